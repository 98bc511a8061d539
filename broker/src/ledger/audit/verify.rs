//! Verification of the audit chain: walks every event in order, recomputes each hash, and checks
//! the chain against the recorded head and against signed checkpoints (stored ones and one an
//! auditor kept). Stops at the first problem and names its sequence number.

use super::Event;
use super::chain::{self, GENESIS};
use super::checkpoint::Checkpoint;
use super::scan::{Row, Snapshot};
use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::ledger::store::Store;
use std::collections::BTreeMap;

/// The first thing found wrong, at the first sequence number that is not trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub seq: i64,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seq {}: {}", self.seq, self.message)
    }
}

fn problem(seq: i64, message: impl Into<String>) -> Problem {
    Problem {
        seq,
        message: message.into(),
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events read.
    pub events: i64,
    /// Hash of the last event read (hex), if any.
    pub head_hash: Option<String>,
    /// Checkpoints whose signature and hash were checked.
    pub checkpoints: usize,
    /// The first problem, or `None` when the log is intact.
    pub problem: Option<Problem>,
}

/// Checkpoint sizes and the hash each says event `size` has.
type Anchors = BTreeMap<i64, [u8; 32]>;

/// Walks events one by one; a pure state machine, independent of where the events come from.
#[derive(Debug)]
pub struct ChainWalker {
    next_seq: i64,
    prev: [u8; 32],
    /// `prev` in lower-case hex, as stored.
    prev_hex: [u8; 64],
    /// size -> expected hash of event `size`, from signed checkpoints.
    anchors: Anchors,
    anchors_checked: usize,
}

impl ChainWalker {
    /// A walker that will also check the given (already signature-checked) anchors.
    pub fn new(anchors: impl IntoIterator<Item = (i64, [u8; 32])>) -> Self {
        Self {
            next_seq: 1,
            prev: GENESIS,
            prev_hex: [b'0'; 64],
            anchors: anchors.into_iter().collect(),
            anchors_checked: 0,
        }
    }

    /// Checks the next event.
    pub fn push(&mut self, ev: &Event) -> Result<(), Problem> {
        let seq = self.next_seq;
        if ev.seq != seq {
            return Err(self.misplaced(ev.seq));
        }
        let content = ev.content();
        let computed = chain::event_hash(&content, &self.prev);
        let mut computed_hex = [0u8; 64];
        hex::encode_to_slice(computed, &mut computed_hex).map_err(|_| problem(seq, "hex"))?;
        // Fast path: both stored hashes are exactly the canonical lower-case hex of the chain.
        if ev.prev_hash.as_bytes() == self.prev_hex && ev.hash.as_bytes() == computed_hex {
            return self.accept(seq, computed, computed_hex);
        }
        // Otherwise decode them, to tell upper-case hex (accepted) from damage (named).
        let stored_hash = chain::parse_hash(&ev.hash)
            .ok_or_else(|| problem(seq, "stored hash is not a 64-digit hex value (row edited)"))?;
        let stored_prev = chain::parse_hash(&ev.prev_hash).ok_or_else(|| {
            problem(
                seq,
                "stored prev_hash is not a 64-digit hex value (row edited)",
            )
        })?;
        if stored_prev != self.prev {
            // Either this row's prev_hash was edited, or the previous row was rewritten together
            // with its hash. A row consistent with its own stored prev_hash points at the latter.
            let self_consistent = chain::event_hash(&content, &stored_prev) == stored_hash;
            return Err(if self_consistent && seq > 1 {
                problem(
                    seq - 1,
                    format!(
                        "event rewritten (or seq {seq} forged): seq {seq} is chained to a different hash"
                    ),
                )
            } else {
                problem(
                    seq,
                    "prev_hash does not match the previous event (row edited)",
                )
            });
        }
        if computed != stored_hash {
            return Err(problem(seq, "content does not match its hash (row edited)"));
        }
        self.accept(seq, computed, computed_hex)
    }

    fn accept(
        &mut self,
        seq: i64,
        computed: [u8; 32],
        computed_hex: [u8; 64],
    ) -> Result<(), Problem> {
        if let Some(anchor) = self.anchors.get(&seq) {
            if *anchor != computed {
                return Err(problem(
                    seq,
                    "hash differs from a signed checkpoint (log rewritten)",
                ));
            }
            self.anchors_checked += 1;
        }
        self.prev = computed;
        self.prev_hex = computed_hex;
        self.next_seq += 1;
        Ok(())
    }

    /// The problem with a row whose seq is not the next one expected.
    fn misplaced(&self, found: i64) -> Problem {
        let seq = self.next_seq;
        if found > seq {
            problem(
                seq,
                format!("event missing (the next stored event is seq {found})"),
            )
        } else if found < 1 {
            problem(found, "a row stands outside the chain (seq starts at 1)")
        } else {
            problem(found, "event out of order or duplicated")
        }
    }

    /// A row that could not be read as an event: a gap before it comes first.
    pub fn push_unreadable(&mut self, seq: i64, message: &str) -> Result<(), Problem> {
        if seq != self.next_seq {
            return Err(self.misplaced(seq));
        }
        Err(problem(seq, message))
    }

    /// Number of events accepted so far.
    pub fn len(&self) -> i64 {
        self.next_seq - 1
    }

    /// True when no event was accepted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends the walk: every anchor must have been reached, the log must end where the chain
    /// head says and with the hash it records, and no stored row may stand outside the chain.
    pub fn finish(&self, head: i64, head_hash: &str, rows: i64) -> Result<usize, Problem> {
        let size = self.len();
        if let Some((&cp_size, _)) = self.anchors.range(size + 1..).next_back() {
            return Err(problem(
                size + 1,
                format!(
                    "log truncated: a signed checkpoint covers {cp_size} events, the log ends at seq {size}"
                ),
            ));
        }
        if head > size {
            return Err(problem(
                size + 1,
                format!(
                    "log truncated: the chain head records {head} events, the log ends at seq {size}"
                ),
            ));
        }
        if head < size {
            return Err(problem(
                head + 1,
                format!("events beyond the recorded chain head ({head}) were inserted"),
            ));
        }
        if head_hash.as_bytes() != self.prev_hex && chain::parse_hash(head_hash) != Some(self.prev)
        {
            return Err(problem(
                size.max(1),
                "the last event does not match the chain head's hash (rewritten)",
            ));
        }
        if rows != size {
            return Err(problem(
                size + 1,
                format!(
                    "{} stored row(s) stand outside the chain of {size} events",
                    rows - size
                ),
            ));
        }
        Ok(self.anchors_checked)
    }

    /// Hash of the last accepted event.
    pub fn head_hash(&self) -> Option<String> {
        (!self.is_empty()).then(|| hex::encode(self.prev))
    }
}

/// Verifies the whole log in `store`.
///
/// `trusted` is the public key checkpoints must be signed with; without it, stored checkpoints
/// cannot be trusted and verification refuses to run if there are any. `kept` is a checkpoint an
/// auditor saved earlier (`--checkpoint FILE`).
pub async fn verify(
    store: &Store,
    trusted: Option<&PublicKey>,
    kept: Option<&Checkpoint>,
) -> Result<VerifyReport> {
    verify_with_progress(store, trusted, kept, &|_| {}).await
}

/// [`verify`], calling `progress(events_checked)` after every page of events.
pub async fn verify_with_progress(
    store: &Store,
    trusted: Option<&PublicKey>,
    kept: Option<&Checkpoint>,
    progress: &(dyn Fn(i64) + Send + Sync),
) -> Result<VerifyReport> {
    let mut snapshot = Snapshot::open(store).await?;
    let (anchors, early_problem) = trusted_anchors(&snapshot.checkpoints, kept, trusted)?;
    let mut walker = ChainWalker::new(anchors);

    let mut found = None;
    'pages: while let Some(page) = snapshot.next_page().await {
        for row in page? {
            let pushed = match &row {
                Row::Event(ev) => walker.push(ev),
                Row::Unreadable { seq, message } => walker.push_unreadable(*seq, message),
            };
            if let Err(p) = pushed {
                found = Some(p);
                break 'pages;
            }
        }
        progress(walker.len());
    }
    let checkpoints = walker.anchors_checked;
    if found.is_none()
        && let Err(p) = walker.finish(snapshot.head, &snapshot.head_hash, snapshot.rows)
    {
        found = Some(p);
    }
    // Report the earliest problem: a bad signature on an early checkpoint beats a later break.
    let problem = match (found, early_problem) {
        (Some(a), Some(b)) => Some(if b.seq < a.seq { b } else { a }),
        (a, b) => a.or(b),
    };
    Ok(VerifyReport {
        events: walker.len(),
        head_hash: walker.head_hash(),
        checkpoints,
        problem,
    })
}

/// The (size, root) pairs of checkpoints signed by `trusted`, and the first problem found among
/// them (a bad signature, or two checkpoints disagreeing about the same event).
fn trusted_anchors(
    stored: &[Checkpoint],
    kept: Option<&Checkpoint>,
    trusted: Option<&PublicKey>,
) -> Result<(Anchors, Option<Problem>)> {
    let mut anchors = BTreeMap::new();
    let mut first_problem: Option<Problem> = None;
    let mut note = |p: Problem| {
        if first_problem.as_ref().is_none_or(|f| p.seq < f.seq) {
            first_problem = Some(p);
        }
    };
    for cp in stored.iter().chain(kept) {
        let Some(key) = trusted else {
            return Err(Error::Key(format!(
                "{} signed checkpoint(s) to check but no public key: give --public-key",
                stored.len() + usize::from(kept.is_some())
            )));
        };
        if !cp.signed_by(key) {
            let what = if cp.key == *key {
                format!(
                    "checkpoint at size {} has an invalid signature (forged or edited)",
                    cp.size
                )
            } else {
                format!(
                    "checkpoint at size {} is signed by {}, not by the trusted key {key} (another instance's key, or forged)",
                    cp.size, cp.key
                )
            };
            note(problem(cp.size, what));
            continue;
        }
        let Some(root) = chain::parse_hash(&cp.root_hash) else {
            note(problem(cp.size, "checkpoint root is malformed"));
            continue;
        };
        match anchors.get(&cp.size) {
            Some(existing) if *existing != root => note(problem(
                cp.size,
                "two signed checkpoints disagree about this event (log rewritten)",
            )),
            _ => {
                anchors.insert(cp.size, root);
            }
        }
    }
    Ok((anchors, first_problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain_of(n: i64) -> Vec<Event> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let mut ev = Event {
                    seq,
                    time_ms: 1_000 * seq,
                    actor: "system".into(),
                    action: "test.event".into(),
                    object: format!("thing:{seq}"),
                    outcome: "success".into(),
                    details: "{}".into(),
                    prev_hash: hex::encode(prev),
                    hash: String::new(),
                };
                prev = chain::event_hash(&ev.content(), &prev);
                ev.hash = hex::encode(prev);
                ev
            })
            .collect()
    }

    fn walk(events: &[Event], anchors: Vec<(i64, [u8; 32])>, head: i64) -> Result<usize, Problem> {
        let head_hash = events.last().map_or("0".repeat(64), |e| e.hash.clone());
        walk_with(events, anchors, head, &head_hash, events.len() as i64)
    }

    fn walk_with(
        events: &[Event],
        anchors: Vec<(i64, [u8; 32])>,
        head: i64,
        head_hash: &str,
        rows: i64,
    ) -> Result<usize, Problem> {
        let mut w = ChainWalker::new(anchors);
        for e in events {
            w.push(e)?;
        }
        w.finish(head, head_hash, rows)
    }

    fn hash_of(ev: &Event) -> [u8; 32] {
        chain::parse_hash(&ev.hash).unwrap()
    }

    #[test]
    fn intact_chain_verifies() {
        let evs = chain_of(10);
        assert_eq!(
            walk(
                &evs,
                vec![(5, hash_of(&evs[4])), (10, hash_of(&evs[9]))],
                10
            ),
            Ok(2)
        );
        assert_eq!(walk(&[], vec![], 0), Ok(0));
    }

    #[test]
    fn edited_content_names_its_seq() {
        let mut evs = chain_of(10);
        evs[6].details = r#"{"x":1}"#.into();
        assert_eq!(walk(&evs, vec![], 10).unwrap_err().seq, 7);
    }

    #[test]
    fn rewritten_row_with_recomputed_hash_names_its_seq() {
        let mut evs = chain_of(10);
        evs[3].actor = "mallory".into();
        let prev = chain::parse_hash(&evs[3].prev_hash).unwrap();
        evs[3].hash = hex::encode(chain::event_hash(&evs[3].content(), &prev));
        assert_eq!(walk(&evs, vec![], 10).unwrap_err().seq, 4);
    }

    #[test]
    fn deleted_row_names_the_missing_seq() {
        let mut evs = chain_of(10);
        evs.remove(2);
        assert_eq!(walk(&evs, vec![], 10).unwrap_err().seq, 3);
    }

    #[test]
    fn truncated_tail_fails_against_checkpoint_or_head() {
        let evs = chain_of(10);
        let anchor = (10, hash_of(&evs[9]));
        let err = walk(&evs[..7], vec![anchor], 7).unwrap_err();
        assert_eq!(err.seq, 8);
        assert!(err.message.contains("truncated"));
        assert_eq!(walk(&evs[..7], vec![], 10).unwrap_err().seq, 8);
    }

    #[test]
    fn whole_chain_rewritten_fails_against_checkpoint() {
        let evs = chain_of(10);
        let anchor = (6, hash_of(&evs[5]));
        // Rebuild a different but internally consistent chain.
        let mut forged = chain_of(10);
        let mut prev = GENESIS;
        for ev in forged.iter_mut() {
            ev.time_ms += 1;
            ev.prev_hash = hex::encode(prev);
            prev = chain::event_hash(&ev.content(), &prev);
            ev.hash = hex::encode(prev);
        }
        assert_eq!(walk(&forged, vec![], 10), Ok(0));
        assert_eq!(walk(&forged, vec![anchor], 10).unwrap_err().seq, 6);
    }

    #[test]
    fn rewritten_last_event_is_caught_by_the_head_hash() {
        let mut evs = chain_of(5);
        let head_hash = evs[4].hash.clone();
        evs[4].actor = "mallory".into();
        let prev = chain::parse_hash(&evs[4].prev_hash).unwrap();
        evs[4].hash = hex::encode(chain::event_hash(&evs[4].content(), &prev));
        let err = walk_with(&evs, vec![], 5, &head_hash, 5).unwrap_err();
        assert_eq!(err.seq, 5, "{err}");
        // Upper-case hex in the head is the same hash.
        let evs = chain_of(5);
        assert_eq!(
            walk_with(&evs, vec![], 5, &evs[4].hash.to_uppercase(), 5),
            Ok(0)
        );
    }

    #[test]
    fn rows_outside_the_chain_are_counted() {
        let evs = chain_of(3);
        let err = walk_with(&evs, vec![], 3, &evs[2].hash, 4).unwrap_err();
        assert_eq!(err.seq, 4);
        assert!(err.message.contains("outside the chain"), "{err}");
        let mut w = ChainWalker::new(vec![]);
        let mut zero = chain_of(1).remove(0);
        zero.seq = 0;
        assert_eq!(w.push(&zero).unwrap_err().seq, 0);
    }

    #[test]
    fn an_unreadable_row_after_a_gap_names_the_gap() {
        let evs = chain_of(4);
        let mut w = ChainWalker::new(vec![]);
        for e in &evs {
            w.push(e).unwrap();
        }
        assert_eq!(w.push_unreadable(6, "bad").unwrap_err().seq, 5);
        assert_eq!(w.push_unreadable(5, "bad").unwrap_err().seq, 5);
    }

    #[test]
    fn garbage_hash_is_a_problem_not_a_panic() {
        let mut evs = chain_of(3);
        evs[1].hash = "zz".into();
        assert_eq!(walk(&evs, vec![], 3).unwrap_err().seq, 2);
    }
}
