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
