use serde::{Deserialize, Serialize};

/// DESIGN §5 account lockout, per organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutPolicy {
    /// Failed attempts that lock the account; 0 turns lockout off.
    pub threshold: u32,
    /// How long a temporary lock lasts.
    pub lock_minutes: u32,
    /// Consecutive temporary locks after which only an administrator can unlock; 0 = never.
    pub permanent_after: u32,
    /// A failure count with no new failure for this long starts again from zero, so a
    /// typo a week ago does not count towards today's lock.
    pub reset_failures_after_minutes: u32,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            lock_minutes: 15,
            permanent_after: 3,
            reset_failures_after_minutes: 12 * 60,
        }
    }
}

impl LockoutPolicy {
    pub fn enabled(&self) -> bool {
        self.threshold > 0
    }

    /// Whether the `lock_count`-th consecutive lock (1-based) is permanent.
    pub fn is_permanent(&self, lock_count: u32) -> bool {
        self.permanent_after > 0 && lock_count >= self.permanent_after
    }

    pub fn lock_duration(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.lock_minutes.max(1)))
    }

    pub fn reset_window(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.reset_failures_after_minutes.max(1)))
    }

    /// The policy at least as strict as every one given, field by field: the fewest
    /// attempts (0, off, only when all are off), the longest lock and memory of
    /// failures, the fewest locks before a permanent one (0, never, only when all say
    /// never). No policies: the defaults.
    ///
    /// Every sign-in name is counted under this one policy (issue 20 item 10): the
    /// sign-in form names no organisation and usernames are unique across them, so a
    /// name that does not exist has no organisation whose policy it could follow. Were
    /// real names counted under their own organisation's policy, the number of attempts
    /// before "locked" would tell which organisation — hence that the name exists. The
    /// strictest combination is the one choice that is the same for every name and
    /// still gives each organisation at least the protection it asked for.
    pub fn strictest(policies: impl IntoIterator<Item = LockoutPolicy>) -> LockoutPolicy {
        fn fewest(a: u32, b: u32) -> u32 {
            match (a, b) {
                (0, x) | (x, 0) => x,
                (a, b) => a.min(b),
            }
        }
        policies
            .into_iter()
            .reduce(|a, b| LockoutPolicy {
                threshold: fewest(a.threshold, b.threshold),
                lock_minutes: a.lock_minutes.max(b.lock_minutes),
                permanent_after: fewest(a.permanent_after, b.permanent_after),
                reset_failures_after_minutes: a
                    .reset_failures_after_minutes
                    .max(b.reset_failures_after_minutes),
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design() {
        let p = LockoutPolicy::default();
        assert_eq!((p.threshold, p.lock_minutes, p.permanent_after), (5, 15, 3));
        assert!(!p.is_permanent(2));
        assert!(p.is_permanent(3));
    }

    #[test]
    fn the_strictest_of_several_takes_the_strictest_of_each_field() {
        let lax = LockoutPolicy {
            threshold: 10,
            lock_minutes: 5,
            permanent_after: 0,
            reset_failures_after_minutes: 60,
        };
        let strict = LockoutPolicy {
            threshold: 3,
            lock_minutes: 30,
            permanent_after: 2,
            reset_failures_after_minutes: 30,
        };
        let off = LockoutPolicy {
            threshold: 0,
            permanent_after: 0,
            ..Default::default()
        };
        let both = LockoutPolicy::strictest([lax.clone(), strict.clone(), off.clone()]);
        assert_eq!(
            both,
            LockoutPolicy {
                threshold: 3,
                lock_minutes: 30,
                permanent_after: 2,
                reset_failures_after_minutes: 12 * 60,
            }
        );
        assert_eq!(
            LockoutPolicy::strictest([strict.clone(), lax.clone()]),
            LockoutPolicy::strictest([lax, strict]),
            "the order of organisations does not matter"
        );
        assert!(!LockoutPolicy::strictest([off.clone(), off]).enabled());
        assert_eq!(LockoutPolicy::strictest([]), LockoutPolicy::default());
    }

    #[test]
    fn zero_means_off_and_never() {
        let p = LockoutPolicy {
            threshold: 0,
            permanent_after: 0,
            ..Default::default()
        };
        assert!(!p.enabled());
        assert!(!p.is_permanent(100));
    }
}
