//! Where a container is in its life, in the OCI runtime spec's words, and the one place that
//! says which step may follow which.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A container's status: it is being made, made but its workload not yet started, running its
/// workload, or stopped. It moves only forward, and may stop from any status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Its namespaces, filesystem and network are being made.
    Creating,
    /// Made; its workload not yet executed.
    Created,
    /// Its workload has been executed.
    Running,
    /// Its workload has ended, or making it failed.
    Stopped,
}

impl Lifecycle {
    /// The OCI word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Creating => "creating",
            Lifecycle::Created => "created",
            Lifecycle::Running => "running",
            Lifecycle::Stopped => "stopped",
        }
    }

    /// Whether a container may go from this status to `next`.
    pub fn may_become(self, next: Lifecycle) -> bool {
        use Lifecycle::*;
        matches!(
            (self, next),
            (Creating, Created) | (Created, Running) | (Creating | Created | Running, Stopped)
        )
    }

    /// Moves to `next`, or says why it cannot.
    pub fn advance(&mut self, next: Lifecycle) -> Result<()> {
        if !self.may_become(next) {
            return Err(Error::Failed(format!(
                "a container that is {} cannot become {}",
                self.as_str(),
                next.as_str()
            )));
        }
        *self = next;
        Ok(())
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Lifecycle::{self, *};

    const ALL: [Lifecycle; 4] = [Creating, Created, Running, Stopped];

    #[test]
    fn only_the_forward_steps_and_stopping_are_legal() {
        let legal = [
            (Creating, Created),
            (Created, Running),
            (Creating, Stopped),
            (Created, Stopped),
            (Running, Stopped),
        ];
        for from in ALL {
            for to in ALL {
                assert_eq!(
                    from.may_become(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn a_refused_step_leaves_the_status_as_it_was() {
        let mut status = Running;
        let error = status.advance(Created).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a container that is running cannot become created"
        );
        assert_eq!(status, Running);
        let mut status = Creating;
        status.advance(Created).unwrap();
        status.advance(Running).unwrap();
        assert!(status.advance(Running).is_err());
        status.advance(Stopped).unwrap();
        assert!(status.advance(Stopped).is_err());
        assert_eq!(status, Stopped);
    }

    #[test]
    fn it_is_recorded_in_the_oci_words() {
        for status in ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<Lifecycle>(&json).unwrap(), status);
        }
    }
}
