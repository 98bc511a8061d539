//! Approval quorums: every approver set of a role needs its count of distinct approvers (AND),
//! and one person fills at most one seat — someone in both db-owners and security cannot satisfy
//! "one of db-owners AND one of security" alone. Seats are matched to approvers with augmenting
//! paths (bipartite matching), so the order approvals arrive in never matters.

use std::collections::BTreeSet;

/// One approver set, resolved: who may fill its seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seats {
    /// As written in the role (`group:db-owners`, `manager`, ...).
    pub label: String,
    pub count: u32,
    /// Identity ids that may fill a seat (the requester is never among them).
    pub members: BTreeSet<String>,
}

/// What is still missing, per set, as (label, seats unfilled). Empty when the quorum is met.
pub fn missing(sets: &[Seats], approvers: &[String]) -> Vec<(String, u32)> {
    // Expand sets into seats.
    let seats: Vec<usize> = sets
        .iter()
        .enumerate()
        .flat_map(|(i, s)| std::iter::repeat_n(i, s.count as usize))
        .collect();
    let mut seat_of: Vec<Option<usize>> = vec![None; approvers.len()];
    let mut taken: Vec<Option<usize>> = vec![None; seats.len()];
    for seat in 0..seats.len() {
        let mut seen = vec![false; approvers.len()];
        augment(
            seat,
            &seats,
            sets,
            approvers,
            &mut seen,
            &mut seat_of,
            &mut taken,
        );
    }
    let mut out = Vec::new();
    for (i, s) in sets.iter().enumerate() {
        let filled = seats
            .iter()
            .enumerate()
            .filter(|(k, set)| **set == i && taken[*k].is_some())
            .count();
        let unfilled = (s.count as usize).saturating_sub(filled);
        if unfilled > 0 {
            out.push((s.label.clone(), u32::try_from(unfilled).unwrap_or(u32::MAX)));
        }
    }
    out
}

fn augment(
    seat: usize,
    seats: &[usize],
    sets: &[Seats],
    approvers: &[String],
    seen: &mut [bool],
    seat_of: &mut [Option<usize>],
    taken: &mut [Option<usize>],
) -> bool {
    for (a, who) in approvers.iter().enumerate() {
        if seen[a] || !sets[seats[seat]].members.contains(who) {
            continue;
        }
        seen[a] = true;
        let free = match seat_of[a] {
            None => true,
            Some(other) => augment(other, seats, sets, approvers, seen, seat_of, taken),
        };
        if free {
            seat_of[a] = Some(seat);
            taken[seat] = Some(a);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(label: &str, count: u32, members: &[&str]) -> Seats {
        Seats {
            label: label.into(),
            count,
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn and_of_sets_needs_each_set() {
        let sets = [
            set("group:db-owners", 1, &["bob", "dave"]),
            set("group:security", 1, &["carol"]),
        ];
        assert_eq!(missing(&sets, &v(&[])).len(), 2);
        assert_eq!(
            missing(&sets, &v(&["bob"])),
            vec![("group:security".into(), 1)]
        );
        assert!(missing(&sets, &v(&["bob", "carol"])).is_empty());
        assert!(missing(&sets, &v(&["carol", "dave"])).is_empty());
    }

    #[test]
    fn one_person_fills_one_seat_only() {
        // bob is in both sets: alone he satisfies neither AND.
        let sets = [set("a", 1, &["bob", "carol"]), set("b", 1, &["bob"])];
        assert_eq!(missing(&sets, &v(&["bob"])).len(), 1);
        // carol arriving first must not block bob from the seat only he can fill.
        assert!(missing(&sets, &v(&["carol", "bob"])).is_empty());
        assert!(missing(&sets, &v(&["bob", "carol"])).is_empty());
    }

    #[test]
    fn counts_need_distinct_people() {
        let sets = [set("group:sre", 2, &["a", "b", "c"])];
        assert_eq!(missing(&sets, &v(&["a"])), vec![("group:sre".into(), 1)]);
        assert!(missing(&sets, &v(&["a", "c"])).is_empty());
        assert_eq!(
            missing(&sets, &v(&["x", "y"])),
            vec![("group:sre".into(), 2)]
        );
    }
}
