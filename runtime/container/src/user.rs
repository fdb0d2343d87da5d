//! Who the workload runs as: `-u USER[:GROUP]` (names looked up in the container's own
//! /etc/passwd and /etc/group, as docker does) or an OCI config's numeric user.

use std::fs::File;

use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};

use crate::error::{Error, Result};
use crate::sys;
use berth_state::files;

/// The user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// `-u`: a user and maybe a group, each a name or a number, resolved in the container.
    Lookup {
        /// The user's name or uid.
        user: String,
        /// The group's name or gid; default: the user's primary group (0 for an unknown uid).
        group: Option<String>,
    },
    /// An OCI config's `process.user`: exact ids.
    Ids {
        /// The uid.
        uid: u32,
        /// The gid.
        gid: u32,
        /// The supplementary groups.
        additional_gids: Vec<u32>,
    },
}

/// A user resolved to ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// The uid.
    pub uid: u32,
    /// The gid.
    pub gid: u32,
    /// The supplementary groups.
    pub groups: Vec<u32>,
    /// The home directory from /etc/passwd, if the user is listed there.
    pub home: Option<String>,
}

impl User {
    /// Parses `-u USER[:GROUP]`.
    pub fn parse(text: &str) -> Result<Self> {
        let (user, group) = match text.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (text, None),
        };
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        if !valid(user) || group.is_some_and(|g| !valid(g)) {
            return Err(Error::Invalid(format!(
                "--user {text:?}: use UID[:GID] or NAME[:GROUP]"
            )));
        }
        Ok(User::Lookup {
            user: user.into(),
            group: group.map(Into::into),
        })
    }

    /// Resolves the user in the container's /etc/passwd and /etc/group, those of the calling
    /// process's `/` (the container's root, once the caller is in it).
    pub fn resolve(&self) -> std::result::Result<Ids, String> {
        let (user, group) = match self {
            User::Ids {
                uid,
                gid,
                additional_gids,
            } => {
                return Ok(Ids {
                    uid: *uid,
                    gid: *gid,
                    groups: additional_gids.clone(),
                    home: None,
                })
            }
            User::Lookup { user, group } => (user, group),
        };
        let passwd = read_container_file(c"etc/passwd")?;
        // A number is a uid, a name a name (a user named "1000" is not uid 1000).
        let field = if user.parse::<u32>().is_ok() { 2 } else { 0 };
        let entry = passwd
            .lines()
            .map(|line| line.split(':').collect::<Vec<_>>())
            .find(|fields| fields.len() >= 7 && fields[field] == user);
        let (uid, name, primary, home) = match (&entry, user.parse::<u32>()) {
            (Some(fields), _) => (
                fields[2]
                    .parse::<u32>()
                    .map_err(|_| bad_line("passwd", user))?,
                Some(fields[0]),
                fields[3]
                    .parse::<u32>()
                    .map_err(|_| bad_line("passwd", user))?,
                Some(fields[5].to_owned()),
            ),
            (None, Ok(uid)) => (uid, None, 0, None),
            (None, Err(_)) => {
                return Err(format!(
                    "user {user:?} is not in the container's /etc/passwd"
                ))
            }
        };
        let groups_file = read_container_file(c"etc/group")?;
        let groups: Vec<Vec<&str>> = groups_file
            .lines()
            .map(|line| line.split(':').collect::<Vec<_>>())
            .filter(|fields| fields.len() >= 4)
            .collect();
        let gid = match group {
            None => primary,
            Some(group) => match groups
                .iter()
                .find(|f| f[if group.parse::<u32>().is_ok() { 2 } else { 0 }] == group)
            {
                Some(fields) => fields[2].parse().map_err(|_| bad_line("group", group))?,
                None => group
                    .parse()
                    .map_err(|_| format!("group {group:?} is not in the container's /etc/group"))?,
            },
        };
        // Supplementary groups: those that list the user by name (docker's rule).
        let mut supplementary: Vec<u32> = match name {
            Some(name) => groups
                .iter()
                .filter(|f| f[3].split(',').any(|member| member == name))
                .filter_map(|f| f[2].parse().ok())
                .collect(),
            None => Vec::new(),
        };
        supplementary.retain(|g| *g != gid);
        Ok(Ids {
            uid,
            gid,
            groups: supplementary,
            home,
        })
    }
}

impl std::fmt::Display for User {
    /// The `-u` form: `berth exec` resolves it again in the container.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            User::Lookup {
                user,
                group: Some(group),
            } => write!(f, "{user}:{group}"),
            User::Lookup { user, group: None } => write!(f, "{user}"),
            User::Ids { uid, gid, .. } => write!(f, "{uid}:{gid}"),
        }
    }
}

/// The container's file `/PATH`, empty if it is missing: opened inside the calling process's
/// root (its links followed inside it, magic ones never) without waiting on a FIFO, and read
/// only if it is a small regular file.
fn read_container_file(path: &std::ffi::CStr) -> std::result::Result<String, String> {
    let name = path.to_string_lossy();
    let failed = |why: String| format!("the container's /{name}: {why}");
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let file = match sys::open_in_root(path, flags) {
        Ok(fd) => File::from(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(String::new()),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(failed(
                "a magic link (/proc/PID/...) or too many links on the way, which berth does \
                 not follow"
                    .into(),
            ))
        }
        Err(e) => return Err(failed(e.to_string())),
    };
    let contents =
        files::read_regular_file(file, files::CONFIG_LIMIT).map_err(|e| failed(e.to_string()))?;
    Ok(String::from_utf8_lossy(&contents).into_owned())
}

fn bad_line(file: &str, name: &str) -> String {
    format!("the container's /etc/{file} has a broken line for {name:?}")
}

impl Ids {
    /// Becomes this user: supplementary groups, gid, then uid (which clears the capabilities
    /// unless the caller set PR_SET_KEEPCAPS).
    pub fn become_user(&self) -> std::result::Result<(), String> {
        let groups: Vec<Gid> = self.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        setgroups(&groups).map_err(|e| format!("set the supplementary groups: {e}"))?;
        setgid(Gid::from_raw(self.gid)).map_err(|e| format!("set gid {}: {e}", self.gid))?;
        setuid(Uid::from_raw(self.uid)).map_err(|e| format!("set uid {}: {e}", self.uid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_specs_are_names_or_numbers() {
        assert_eq!(
            User::parse("1000:100").unwrap(),
            User::Lookup {
                user: "1000".into(),
                group: Some("100".into())
            }
        );
        assert!(User::parse("www-data").is_ok());
        for bad in ["", ":1", "1:", "a b", "1:2:3", "x/y"] {
            assert!(User::parse(bad).is_err(), "{bad:?}");
        }
    }
}
