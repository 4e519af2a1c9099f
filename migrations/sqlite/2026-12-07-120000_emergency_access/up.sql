-- Issue 26 (DESIGN §15, ONC 170.315 (d)(6)): emergency ("break-glass") access.
--
-- Who may break the glass: designated in advance by an administrator, one row per user.
CREATE TABLE emergency_designations (
    user_id TEXT PRIMARY KEY NOT NULL,
    org_id TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TIMESTAMP NOT NULL
);

-- Every time someone broke the glass: the window, why, and its review. Rows are never
-- deleted: a window ends (ended_at) and is signed off (reviewed_at), both once.
-- `username` is the user's name at that moment, so a review reads without joins.
CREATE TABLE emergency_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    username TEXT NOT NULL,
    session_handle TEXT NOT NULL,
    reason TEXT NOT NULL,
    context TEXT,
    requested_by TEXT,
    started_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    end_reason TEXT,
    reviewed_by TEXT,
    reviewed_at TIMESTAMP,
    review_note TEXT,
    overdue_notified_at TIMESTAMP
);
CREATE INDEX emergency_sessions_awaiting_review ON emergency_sessions (started_at)
    WHERE reviewed_at IS NULL;
CREATE INDEX emergency_sessions_open ON emergency_sessions (expires_at)
    WHERE ended_at IS NULL;
CREATE INDEX emergency_sessions_user ON emergency_sessions (user_id, started_at);

-- The emergency window a grant was made under: its tokens carry the emergency `acr`
-- and claim while that window is open, and ordinary ones after.
ALTER TABLE oidc_grants ADD COLUMN emergency_id TEXT;
