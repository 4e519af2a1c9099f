//! Walking the chain and naming the first thing wrong with it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    chain::{ChainKey, GENESIS_HASH},
    ledger::{self, CheckpointRow, EventRow},
};
use crate::store::{DbConnection, StoreError};

/// What was done to the trail, as far as the chain can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// An event's stored content (or the chain head) no longer matches its MAC.
    Altered,
    /// Events are missing: a gap in seq, or the chain ends before its head.
    Removed,
    /// A row that was never appended through the chain: a forgery or a copy.
    Inserted,
    /// A genuine event sits at the wrong place in the chain.
    Reordered,
    /// The checkpoint the walk starts from does not verify.
    Checkpoint,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Altered => "altered",
            Self::Removed => "removed",
            Self::Inserted => "inserted",
            Self::Reordered => "reordered",
            Self::Checkpoint => "checkpoint",
        }
    }
}

/// The first problem found, naming the event by seq (and id when there is a row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub seq: i64,
    pub id: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointSummary {
    /// The last pruned event; the chain resumes at the next seq.
    pub last_seq: i64,
    pub pruned_before: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub intact: bool,
    pub events_verified: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// Where the chain ends according to `audit_head`. Record it elsewhere from time
    /// to time: removing the newest events *and* rewinding the head is the one change
    /// a chain alone cannot reveal.
    pub head_seq: i64,
    pub head_hash: String,
    pub checkpoint: Option<CheckpointSummary>,
    pub problem: Option<Problem>,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Some(problem) => write!(
                f,
                "audit trail NOT intact: {problem} ({} events verified before it)",
                self.events_verified
            ),
            None => {
                write!(
                    f,
                    "audit trail intact: {} events verified",
                    self.events_verified
                )?;
                if let (Some(first), Some(last)) = (self.first_seq, self.last_seq) {
                    write!(f, " (seq {first} to {last})")?;
                }
                if let Some(cp) = &self.checkpoint {
                    write!(
                        f,
                        ", starting after the checkpoint at seq {} (events before {} pruned)",
                        cp.last_seq,
                        cp.pruned_before.to_rfc3339()
                    )?;
                }
                write!(f, "; head seq {} hash {}", self.head_seq, self.head_hash)
            }
        }
    }
}

impl From<&CheckpointRow> for CheckpointSummary {
    fn from(cp: &CheckpointRow) -> Self {
        Self {
            last_seq: cp.last_seq,
            pruned_before: cp.cutoff.and_utc(),
            created_at: cp.created_at.and_utc(),
        }
    }
}

/// The report when the `audit_head` row itself is gone: nothing says where the chain
/// ends, and nothing can be appended until it is restored.
pub(super) fn without_head(checkpoint: Option<&CheckpointRow>) -> VerifyReport {
    VerifyReport {
        intact: false,
        events_verified: 0,
        first_seq: None,
        last_seq: None,
        head_seq: 0,
        head_hash: String::new(),
        checkpoint: checkpoint.map(CheckpointSummary::from),
        problem: Some(Problem {
            kind: ProblemKind::Removed,
            seq: 0,
            id: None,
            message: "the chain head (table audit_head, seq 0) was removed: where the chain ends is unknown".into(),
        }),
    }
}

/// Where the walk stands: the seq and `prev_hash` the next event must have.
pub(super) struct Walk {
    pub expected_seq: i64,
    pub expected_prev: String,
    pub verified: u64,
    pub first_seq: Option<i64>,
}

/// Where the walk starts: after a valid checkpoint, or at the genesis.
pub(super) fn start(key: &ChainKey, checkpoint: Option<&CheckpointRow>) -> Result<Walk, Problem> {
    match checkpoint {
        None => Ok(Walk {
            expected_seq: 1,
            expected_prev: GENESIS_HASH.to_owned(),
            verified: 0,
            first_seq: None,
        }),
        Some(cp) if key.verifies_checkpoint(&cp.content(), &cp.signature) => Ok(Walk {
            expected_seq: cp.last_seq.saturating_add(1),
            expected_prev: cp.last_hash.clone(),
            verified: 0,
            first_seq: None,
        }),
        Some(cp) => Err(Problem {
            kind: ProblemKind::Checkpoint,
            seq: cp.last_seq,
            id: None,
            message: format!(
                "the checkpoint at seq {} was altered or forged: its signature does not verify",
                cp.last_seq
            ),
        }),
    }
}

/// What `step` makes of one row.
enum Step {
    /// The row verifies and links: the walk moves on.
    Ok,
    /// Something is wrong; `classify` (with the database) says what.
    Suspect,
    /// Known without asking the database.
    Problem(Problem),
}

impl Walk {
    fn step(&mut self, key: &ChainKey, row: &EventRow) -> Step {
        if row.seq < self.expected_seq {
            // Rows are walked in seq order, so this is a row below the chain's start:
            // seq ≤ 0, or at or before the checkpoint.
            return Step::Problem(Problem {
                kind: ProblemKind::Inserted,
                seq: row.seq,
                id: Some(row.id.clone()),
                message: format!(
                    "event seq {} (id {}) was inserted: the chain starts at seq {}",
                    row.seq, row.id, self.expected_seq
                ),
            });
        }
        if row.seq > self.expected_seq {
            let missing = if row.seq - self.expected_seq == 1 {
                format!("event seq {} was removed", self.expected_seq)
            } else {
                format!(
                    "events seq {} to {} were removed",
                    self.expected_seq,
                    row.seq - 1
                )
            };
            return Step::Problem(Problem {
                kind: ProblemKind::Removed,
                seq: self.expected_seq,
                id: None,
                message: format!(
                    "{missing}: the next event present is seq {} (id {})",
                    row.seq, row.id
                ),
            });
        }
        if row.prev_hash == self.expected_prev && key.verifies_event(&row.content(), &row.hash) {
            self.verified += 1;
            self.first_seq.get_or_insert(row.seq);
            self.expected_seq += 1;
            self.expected_prev.clone_from(&row.hash);
            Step::Ok
        } else {
            Step::Suspect
        }
    }

    /// After the last row up to the head: the walk must have reached the head.
    pub fn finish(&self, head_seq: i64, head_hash: &str) -> Option<Problem> {
        let last = self.expected_seq - 1;
        if last < head_seq {
            return Some(Problem {
                kind: ProblemKind::Removed,
                seq: self.expected_seq,
                id: None,
                message: if head_seq == self.expected_seq {
                    format!(
                        "event seq {} was removed: the chain should end at seq {head_seq}, but its last event is seq {last}",
                        self.expected_seq
                    )
                } else {
                    format!(
                        "events seq {} to {head_seq} were removed: the chain should end at seq {head_seq}, but its last event is seq {last}",
                        self.expected_seq
                    )
                },
            });
        }
        if last > head_seq || self.expected_prev != head_hash {
            return Some(Problem {
                kind: ProblemKind::Altered,
                seq: head_seq,
                id: None,
                message: format!(
                    "the chain head (seq {head_seq}) does not match the chain's last event (seq {last}): audit_head was altered"
                ),
            });
        }
        None
    }
}

/// Rows read and checked per round trip.
const PAGE: i64 = 1000;

/// How one page of the walk ended.
pub(super) enum Page {
    Continue { last_seq: i64 },
    End,
    Problem(Problem),
}

/// Reads the rows after `after` (up to the head) and walks them; hands the walk back
/// so the next page continues it.
pub(super) fn walk_page(
    conn: &mut DbConnection,
    key: &ChainKey,
    mut walk: Walk,
    after: i64,
    head: &(i64, String),
) -> Result<(Walk, Page), StoreError> {
    let rows = ledger::page(conn, after, head.0, PAGE)?;
    let Some(last_seq) = rows.last().map(|r| r.seq) else {
        return Ok((walk, Page::End));
    };
    for row in &rows {
        match walk.step(key, row) {
            Step::Ok => {}
            Step::Problem(problem) => return Ok((walk, Page::Problem(problem))),
            Step::Suspect => {
                let problem = classify(conn, row, &walk.expected_prev, head)?;
                return Ok((walk, Page::Problem(problem)));
            }
        }
    }
    Ok((walk, Page::Continue { last_seq }))
}

/// Says what happened to `row`, the first row that failed to verify or link, at the
/// place where the walk expected seq `row.seq` following a hash of `expected_prev`.
///
/// The evidence is who points at whom: a genuine event's hash is its successor's
/// `prev_hash` (or the head's hash, for the last one), and a forged row's hash is no
/// one's, since nobody without the key can make one that verifies.
fn classify(
    conn: &mut DbConnection,
    row: &EventRow,
    expected_prev: &str,
    head: &(i64, String),
) -> Result<Problem, StoreError> {
    let problem = |kind, why: String| Problem {
        kind,
        seq: row.seq,
        id: Some(row.id.clone()),
        message: format!(
            "event seq {} (id {}) was {}: {why}",
            row.seq,
            row.id,
            kind.as_str()
        ),
    };
    if let Some(original) = ledger::copy_of(conn, row)? {
        return Ok(problem(
            ProblemKind::Inserted,
            format!("it is a copy of event seq {original}"),
        ));
    }
    // Events that name this row as their predecessor; the head counts as the
    // successor of the last event.
    let mut successors = ledger::linked_from(conn, &row.hash, row.seq)?;
    if head.1 == row.hash {
        successors.push(head.0.saturating_add(1));
    }
    if successors.contains(&(row.seq + 1)) {
        return Ok(problem(
            ProblemKind::Altered,
            "its stored content no longer matches its MAC".into(),
        ));
    }
    if let Some(successor) = successors.first() {
        return Ok(problem(
            ProblemKind::Reordered,
            format!(
                "it was written directly before the event now at seq {successor}, not at seq {}",
                row.seq
            ),
        ));
    }
    let heirs = ledger::linked_from(conn, expected_prev, row.seq)?;
    if heirs.contains(&(row.seq + 1)) {
        return Ok(problem(
            ProblemKind::Inserted,
            format!(
                "it is not part of the chain, which runs from seq {} straight to seq {}",
                row.seq - 1,
                row.seq + 1
            ),
        ));
    }
    if let Some(heir) = heirs.first() {
        return Ok(problem(
            ProblemKind::Reordered,
            format!(
                "the event that follows seq {} in the chain is now at seq {heir}",
                row.seq - 1
            ),
        ));
    }
    Ok(if row.prev_hash == expected_prev {
        problem(
            ProblemKind::Altered,
            "its stored content no longer matches its MAC".into(),
        )
    } else {
        problem(
            ProblemKind::Inserted,
            "its MAC does not verify and it links to no event in the chain".into(),
        )
    })
}

/// A row found past the committed head.
pub(super) fn beyond_head(row: &EventRow, head_seq: i64) -> Problem {
    Problem {
        kind: ProblemKind::Inserted,
        seq: row.seq,
        id: Some(row.id.clone()),
        message: format!(
            "event seq {} (id {}) was inserted: it lies beyond the end of the chain (seq {head_seq})",
            row.seq, row.id
        ),
    }
}
