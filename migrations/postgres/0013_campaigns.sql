-- Access review campaigns: definitions (policy as code `[[reviews]]` or the API), the campaigns
-- started from them (and mover reviews), their items with evidence, and every decision taken
-- on an item, stage by stage. Identical in both dialects; JSON in TEXT, times in ms.

-- What to review, by whom, how often. `next_start_at` is when the scheduler starts the next
-- campaign (NULL: not again).
CREATE TABLE review_definitions (
    name          TEXT PRIMARY KEY,
    spec          TEXT NOT NULL,
    source        TEXT NOT NULL DEFAULT 'api',
    next_start_at BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- One run of a definition (or a mover review, `definition` NULL). `spec` is frozen at start.
CREATE TABLE review_campaigns (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    definition    TEXT,
    kind          TEXT NOT NULL CHECK (kind IN ('campaign', 'mover')),
    owner         TEXT NOT NULL,
    spec          TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('active', 'ended', 'closed')),
    started_at    BIGINT NOT NULL,
    ends_at       BIGINT NOT NULL,
    reminded_at   BIGINT,
    escalated_at  BIGINT,
    ended_at      BIGINT,
    signed_off_by TEXT,
    closed_at     BIGINT
);
CREATE INDEX review_campaigns_by_state ON review_campaigns (state, ends_at);

-- One access of one person to decide. `reviewer` is who decides at the current stage (a
-- username or `group:NAME`); `decision` is the final one once `state` is `decided`.
CREATE TABLE review_items (
    id             TEXT PRIMARY KEY,
    campaign_id    TEXT NOT NULL REFERENCES review_campaigns (id) ON DELETE CASCADE,
    identity_id    TEXT NOT NULL,
    username       TEXT NOT NULL,
    access         TEXT NOT NULL CHECK (access IN ('assignment', 'membership', 'privilege')),
    access_ref     TEXT NOT NULL,
    role           TEXT,
    held_as        TEXT NOT NULL,
    privileged     BIGINT NOT NULL DEFAULT 0,
    evidence       TEXT NOT NULL,
    recommendation TEXT NOT NULL CHECK (recommendation IN ('keep', 'revoke')),
    rec_reason     TEXT NOT NULL,
    stage          BIGINT NOT NULL DEFAULT 0,
    reviewer       TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('open', 'decided', 'applied')),
    decision       TEXT,
    keep_until     BIGINT,
    reason         TEXT,
    decided_by     TEXT,
    decided_at     BIGINT,
    opened_at      BIGINT,
    applied_at     BIGINT,
    outcome        TEXT,
    verified_at    BIGINT,
    verified       BIGINT
);
CREATE INDEX review_items_by_campaign ON review_items (campaign_id, state);
CREATE INDEX review_items_by_reviewer ON review_items (reviewer, state);

-- Every decision on an item in order: each stage's, delegations, and the unanswered policy's.
CREATE TABLE review_decisions (
    id          TEXT PRIMARY KEY,
    item_id     TEXT NOT NULL REFERENCES review_items (id) ON DELETE CASCADE,
    stage       BIGINT NOT NULL,
    reviewer    TEXT NOT NULL,
    decision    TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    keep_until  BIGINT,
    delegate_to TEXT,
    opened      BIGINT NOT NULL DEFAULT 0,
    bulk        BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);
CREATE INDEX review_decisions_by_item ON review_decisions (item_id, created_at);
