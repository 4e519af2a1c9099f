//! `audit verify --anchor FILE`: each anchor line against its MAC, and the database
//! against each anchor.

use std::fmt;

use serde::Serialize;

use super::{
    Audit, AuditError,
    anchor::Anchor,
    ledger::{self, CheckpointRow},
};

/// What is wrong with one anchor, or with the database according to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorProblemKind {
    /// The line is not an anchor at all.
    Malformed,
    /// The line's MAC does not verify: edited, or written by someone without the key.
    Forged,
    /// The anchored event is not in the database, nor covered by a prune checkpoint.
    Missing,
    /// The database holds a different event at the anchored seq.
    Replaced,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorProblem {
    pub kind: AnchorProblemKind,
    /// 1-based line of the anchor file.
    pub line: usize,
    pub seq: Option<i64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorReport {
    pub intact: bool,
    /// Lines whose MAC verified.
    pub anchors_verified: u64,
    /// The furthest seq any valid anchor vouches for.
    pub latest_seq: Option<i64>,
    pub problems: Vec<AnchorProblem>,
}

/// Problems printed one a line before the rest are summed up.
const SHOWN: usize = 50;

impl fmt::Display for AnchorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            write!(
                f,
                "anchors intact: {} anchors verified, each anchored event is in the database",
                self.anchors_verified
            )?;
            if let Some(seq) = self.latest_seq {
                write!(f, " (up to seq {seq})")?;
            }
            return Ok(());
        }
        write!(
            f,
            "anchors NOT intact: {} problem(s) ({} anchors verified)",
            self.problems.len(),
            self.anchors_verified
        )?;
        for problem in self.problems.iter().take(SHOWN) {
            write!(f, "\n  {}", problem.message)?;
        }
        if self.problems.len() > SHOWN {
            write!(f, "\n  … and {} more", self.problems.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// Seqs looked up per round trip.
const LOOKUP: usize = 500;

impl Audit {
    /// Checks the anchor file's text: each line's MAC, then that the database still
    /// holds each anchored event (by seq and hash), or a prune checkpoint covers it.
    pub async fn verify_anchors(&self, text: &str) -> Result<AnchorReport, AuditError> {
        let mut problems = Vec::new();
        let mut valid: Vec<(usize, Anchor)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Anchor>(line) {
                Err(e) => problems.push(AnchorProblem {
                    kind: AnchorProblemKind::Malformed,
                    line: number,
                    seq: None,
                    message: format!("line {number} is not an anchor: {e}"),
                }),
                Ok(anchor) if !self.anchor_key.verifies(&anchor) => {
                    problems.push(AnchorProblem {
                        kind: AnchorProblemKind::Forged,
                        line: number,
                        seq: Some(anchor.seq),
                        message: format!(
                            "line {number} (an anchor of seq {} at {}) was edited or forged: its MAC does not verify",
                            anchor.seq, anchor.time
                        ),
                    });
                }
                Ok(anchor) => valid.push((number, anchor)),
            }
        }
        let anchors_verified = valid.len() as u64;
        let latest_seq = valid.iter().map(|(_, a)| a.seq).max();
        valid.sort_by_key(|(line, a)| (a.seq, *line));

        let checkpoint = self.store.run(ledger::latest_checkpoint).await?;
        let mut stored = std::collections::HashMap::new();
        let mut seqs: Vec<i64> = valid.iter().map(|(_, a)| a.seq).collect();
        seqs.dedup();
        for chunk in seqs.chunks(LOOKUP) {
            let chunk = chunk.to_vec();
            let found = self
                .store
                .run(move |c| ledger::hashes_at(c, &chunk))
                .await?;
            stored.extend(found);
        }
        // Consecutive missing anchors name one run of missing events: reported once,
        // by its furthest anchor.
        let mut missing_run: Option<(i64, usize)> = None;
        for (line, anchor) in &valid {
            let problem = match stored.get(&anchor.seq) {
                // The head of an empty chain: nothing to hold.
                None if anchor.seq == 0 => None,
                Some(hash) if *hash == anchor.hash => None,
                Some(_) => Some(AnchorProblem {
                    kind: AnchorProblemKind::Replaced,
                    line: *line,
                    seq: Some(anchor.seq),
                    message: format!(
                        "event seq {} was anchored at {} with hash {}, but the database holds a different event at seq {}: the anchored events were removed and their seqs reused",
                        anchor.seq, anchor.time, anchor.hash, anchor.seq
                    ),
                }),
                None if covered(checkpoint.as_ref(), anchor) => None,
                None => {
                    let seq = anchor.seq;
                    let below = self
                        .store
                        .run(move |c| ledger::last_seq_below(c, seq))
                        .await?;
                    let pruned = checkpoint.as_ref().map_or(0, |cp| cp.last_seq);
                    let first = below.unwrap_or(0).max(pruned) + 1;
                    let range = if first == seq {
                        format!("event {seq} was")
                    } else {
                        format!("events {first}–{seq} were")
                    };
                    let problem = AnchorProblem {
                        kind: AnchorProblemKind::Missing,
                        line: *line,
                        seq: Some(seq),
                        message: format!(
                            "{range} anchored at {} and {} missing from the database",
                            anchor.time,
                            if first == seq { "is" } else { "are" }
                        ),
                    };
                    if let Some((run_first, index)) = missing_run
                        && run_first == first
                    {
                        problems[index] = problem;
                        continue;
                    }
                    missing_run = Some((first, problems.len()));
                    Some(problem)
                }
            };
            if let Some(problem) = problem {
                problems.push(problem);
            }
        }
        problems.sort_by_key(|p| p.line);
        Ok(AnchorReport {
            intact: problems.is_empty(),
            anchors_verified,
            latest_seq,
            problems,
        })
    }
}

/// Whether the anchored event was pruned behind `checkpoint` (and, for the last
/// pruned one, whether it is the same event).
fn covered(checkpoint: Option<&CheckpointRow>, anchor: &Anchor) -> bool {
    checkpoint.is_some_and(|cp| {
        anchor.seq < cp.last_seq || (anchor.seq == cp.last_seq && anchor.hash == cp.last_hash)
    })
}
