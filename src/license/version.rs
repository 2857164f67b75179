//! Feature versions (`version=4.0`): dotted numbers compared part by part.
//!
//! A pool of version V serves every request for V or lower, as in FlexLM. Comparison is
//! numeric per part with missing parts read as zero, so `4` == `4.0` and `4.10` > `4.9`
//! (FlexLM compares versions as decimal numbers, under which `4.10` < `4.9`; dotted
//! numbers are what vendors mean today).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Most parts a version may have (`major.minor.patch.build`).
pub const MAX_VERSION_PARTS: usize = 4;

/// A feature version: up to [`MAX_VERSION_PARTS`] numbers.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Version {
    parts: [u32; MAX_VERSION_PARTS],
    /// How many parts were written, to print the version the way it was given.
    written: u8,
}

impl Version {
    /// The lowest version, `0`: what a request that names no version asks for.
    pub const ZERO: Version = Version { parts: [0; MAX_VERSION_PARTS], written: 1 };

    /// The numeric parts, zero-padded to [`MAX_VERSION_PARTS`].
    pub fn parts(&self) -> [u32; MAX_VERSION_PARTS] {
        self.parts
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts.hash(state);
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Version, String> {
        let mut parts = [0u32; MAX_VERSION_PARTS];
        let mut written = 0usize;
        for piece in s.split('.') {
            if written == MAX_VERSION_PARTS {
                return Err(format!("`{s}` has more than {MAX_VERSION_PARTS} parts"));
            }
            if piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("`{s}` is not a version like 4.0 or 2.1.3"));
            }
            parts[written] =
                piece.parse().map_err(|_| format!("`{piece}` in version `{s}` is too large"))?;
            written += 1;
        }
        Ok(Version { parts, written: written as u8 })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = usize::from(self.written.clamp(1, MAX_VERSION_PARTS as u8));
        for (i, part) in self.parts[..shown].iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{part}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn versions_compare_numerically_part_by_part() {
        assert_eq!(v("4"), v("4.0"));
        assert!(v("4.10") > v("4.9"));
        assert!(v("2.1") < v("2.1.1"));
        assert!(Version::ZERO <= v("0.1"));
        assert_eq!(v("4.0").to_string(), "4.0");
        assert_eq!(v("2.1.3").to_string(), "2.1.3");
    }

    #[test]
    fn malformed_versions_are_refused_with_the_reason() {
        for bad in ["", "4.", ".4", "4..0", "v4", "1.2.3.4.5", "99999999999", "-1"] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }
}
