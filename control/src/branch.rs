//! The via-branches of a call (ng `via-branch`): a proxy that forks an INVITE sends one
//! offer per branch, and deletes a branch that fails (Kamailio's failure route) while the
//! others ring on.
//!
//! rtpengine keeps an "other side" monologue per branch and destroys one on a `delete`
//! that names its via-branch (call.c `call_delete_branch`, `monologue_destroy`): the call
//! goes only when fewer than two tagged parties and no branch are left. relayd's branches
//! share the recipient's legs (crate::call), so a branch is only a name here: deleting
//! one forgets it (and what the offer of that branch asked of rtcp-mux); no socket of
//! the others goes with it.

/// Branches a call remembers; an offer on a further one forgets the oldest (bounded
/// state for what a peer names).
pub const MAX_BRANCHES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Branch {
    name: String,
    /// A `delete` with a delay: the branch goes at this time (rtpengine's `ml->deleted`).
    delete_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Branches {
    /// Oldest first.
    list: Vec<Branch>,
    /// The branch the answer came from (it tagged the recipient).
    answered: Option<String>,
}

impl Branches {
    /// An offer on branch `name` ("" is none): remembered, a pending deletion cancelled
    /// (rtpengine's `__monologue_unkernelize` on new signalling).
    pub fn offered(&mut self, name: &str) {
        if name.is_empty() {
            return;
        }
        self.list.retain(|b| b.name != name);
        if self.list.len() >= MAX_BRANCHES {
            let old = self.list.remove(0);
            if self.answered.as_deref() == Some(old.name.as_str()) {
                self.answered = None;
            }
        }
        self.list.push(Branch { name: name.to_string(), delete_at_ms: None });
    }

    /// An answer on branch `name` ("" is none: the latest offer's branch, the recipient
    /// rtpengine tags then).
    pub fn answered(&mut self, name: &str) {
        let b = if name.is_empty() { self.list.last_mut() } else { self.list.iter_mut().find(|b| b.name == name) };
        if let Some(b) = b {
            b.delete_at_ms = None;
            self.answered = Some(b.name.clone());
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.list.iter().any(|b| b.name == name)
    }

    /// Is `name` the branch whose answer tagged the recipient?
    pub fn is_answered(&self, name: &str) -> bool {
        self.answered.as_deref() == Some(name)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Forget `name` now.
    pub fn remove(&mut self, name: &str) {
        self.list.retain(|b| b.name != name);
        if self.is_answered(name) {
            self.answered = None;
        }
    }

    /// Forget `name` at `at_ms` (an earlier pending time stays).
    pub fn schedule(&mut self, name: &str, at_ms: u64) {
        if let Some(b) = self.list.iter_mut().find(|b| b.name == name) {
            b.delete_at_ms = Some(b.delete_at_ms.map_or(at_ms, |t| t.min(at_ms)));
        }
    }

    /// Move pending deletion times to another clock (a restored call: crate::persist).
    pub fn map_times(&mut self, f: impl Fn(u64) -> u64) {
        for b in &mut self.list {
            b.delete_at_ms = b.delete_at_ms.map(&f);
        }
    }

    /// The branches due at `now_ms`, forgotten.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let due: Vec<String> =
            self.list.iter().filter(|b| b.delete_at_ms.is_some_and(|t| now_ms >= t)).map(|b| b.name.clone()).collect();
        for n in &due {
            self.remove(n);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_remember_answers_mark_deletes_forget() {
        let mut b = Branches::default();
        b.offered("");
        assert!(b.is_empty(), "an offer without a branch names none");
        b.offered("foo.0");
        b.offered("foo.1");
        assert!(b.contains("foo.0") && b.contains("foo.1") && !b.contains("foo.2"));
        b.answered("");
        assert!(b.is_answered("foo.1"), "no via-branch: the latest offer's");
        b.answered("foo.0");
        assert!(b.is_answered("foo.0") && !b.is_answered("foo.1"));
        b.answered("nope");
        assert!(b.is_answered("foo.0"), "an unknown branch changes nothing");
        b.remove("foo.0");
        assert!(!b.contains("foo.0") && !b.is_answered("foo.0"));
        b.remove("foo.1");
        assert!(b.is_empty());
    }

    #[test]
    fn a_delayed_delete_goes_at_its_time_unless_signalling_comes_first() {
        let mut b = Branches::default();
        b.offered("a");
        b.offered("b");
        b.schedule("a", 1000);
        b.schedule("a", 5000);
        b.schedule("b", 2000);
        b.schedule("zzz", 0);
        assert!(b.expire(999).is_empty());
        assert_eq!(b.expire(1000), vec!["a".to_string()], "the earlier time stays");
        // a re-offer (or an answer) on the branch cancels its deletion
        b.offered("b");
        assert!(b.expire(u64::MAX).is_empty());
        b.schedule("b", 10);
        b.answered("b");
        assert!(b.expire(u64::MAX).is_empty() && b.contains("b"));
    }

    #[test]
    fn bounded_the_oldest_forgotten() {
        let mut b = Branches::default();
        for i in 0..100 {
            b.offered(&format!("z9hG4bK{i}"));
        }
        b.answered("z9hG4bK92");
        b.offered("z9hG4bK100");
        assert_eq!(b.list.len(), MAX_BRANCHES);
        assert!(!b.contains("z9hG4bK92") && !b.is_answered("z9hG4bK92"), "forgotten with the branch");
        assert!(b.contains("z9hG4bK99") && b.contains("z9hG4bK100"));
        // a repeated offer moves the branch to the newest place instead of a second entry
        b.offered("z9hG4bK93");
        b.offered("z9hG4bK101");
        assert!(b.contains("z9hG4bK93") && !b.contains("z9hG4bK94"));
    }
}
