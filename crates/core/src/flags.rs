//! Flags: facts about an address that hold whatever the verdict is.
//!
//! Owns `Flag`, `Flags` and `Flags::for_address` (role account, disposable, free provider; the
//! catch-all flag is set by whoever knows the domain's catch-all state). Serialised as a list
//! of names, e.g. `["role_account","free_provider"]`. It does not decide verdicts (`decision`
//! does).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::address::EmailAddress;
use crate::domain_lists::{is_disposable, is_free_provider};
use crate::error::Error;
use crate::role::is_role_local_part;

/// One flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// The domain accepts mail for any local part.
    CatchAllDomain,
    /// The local part names a role (`support@`), not a person.
    RoleAccount,
    /// The domain (or a parent) is a disposable-mail service.
    Disposable,
    /// The domain is a free mail provider.
    FreeProvider,
}

impl Flag {
    /// Every flag, in serialisation order.
    pub const ALL: [Flag; 4] = [
        Flag::CatchAllDomain,
        Flag::RoleAccount,
        Flag::Disposable,
        Flag::FreeProvider,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::CatchAllDomain => "catch_all_domain",
            Flag::RoleAccount => "role_account",
            Flag::Disposable => "disposable",
            Flag::FreeProvider => "free_provider",
        }
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Flag {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Flag::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| Error::UnknownName {
                kind: "flag",
                value: s.chars().filter(|c| !c.is_control()).take(64).collect(),
            })
    }
}

/// The set of flags of one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    pub catch_all_domain: bool,
    pub role_account: bool,
    pub disposable: bool,
    pub free_provider: bool,
}

impl Flags {
    /// The flags that follow from the address alone: role account, disposable, free provider.
    pub fn for_address(address: &EmailAddress) -> Flags {
        Flags {
            catch_all_domain: false,
            role_account: is_role_local_part(&address.local_unquoted()),
            disposable: is_disposable(address.domain()),
            free_provider: is_free_provider(address.domain()),
        }
    }

    /// Whether one flag is set.
    pub fn contains(&self, flag: Flag) -> bool {
        match flag {
            Flag::CatchAllDomain => self.catch_all_domain,
            Flag::RoleAccount => self.role_account,
            Flag::Disposable => self.disposable,
            Flag::FreeProvider => self.free_provider,
        }
    }

    /// Sets one flag.
    pub fn insert(&mut self, flag: Flag) {
        match flag {
            Flag::CatchAllDomain => self.catch_all_domain = true,
            Flag::RoleAccount => self.role_account = true,
            Flag::Disposable => self.disposable = true,
            Flag::FreeProvider => self.free_provider = true,
        }
    }

    /// The set flags, in `Flag::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = Flag> + '_ {
        Flag::ALL.into_iter().filter(|f| self.contains(*f))
    }

    /// The names of the set flags, in `Flag::ALL` order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(Flag::as_str).collect()
    }

    /// True when no flag is set.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// The names joined with `,` (empty when none): the form for a CSV cell.
impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl Serialize for Flags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Flag::as_str))
    }
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        let mut flags = Flags::default();
        for name in names {
            flags.insert(name.parse().map_err(serde::de::Error::custom)?);
        }
        Ok(flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_address_sets_what_the_address_says() {
        let a = EmailAddress::parse("Support+EU@gmail.com").unwrap();
        let f = Flags::for_address(&a);
        assert!(f.role_account && f.free_provider && !f.disposable && !f.catch_all_domain);

        let a = EmailAddress::parse("alice@sub.mailinator.com").unwrap();
        let f = Flags::for_address(&a);
        assert!(f.disposable && !f.role_account);

        let a = EmailAddress::parse("\"no-reply\"@example.com").unwrap();
        assert!(Flags::for_address(&a).role_account);

        let a = EmailAddress::parse("alice@example.com").unwrap();
        assert!(Flags::for_address(&a).is_empty());
    }

    #[test]
    fn serialise_as_list_of_names() {
        let f = Flags {
            catch_all_domain: true,
            free_provider: true,
            ..Flags::default()
        };
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"["catch_all_domain","free_provider"]"#);
        assert_eq!(serde_json::from_str::<Flags>(&json).unwrap(), f);
        assert_eq!(serde_json::to_string(&Flags::default()).unwrap(), "[]");
        assert!(serde_json::from_str::<Flags>(r#"["vip"]"#).is_err());
        assert_eq!(f.to_string(), "catch_all_domain,free_provider");
    }

    #[test]
    fn flag_names_round_trip() {
        for f in Flag::ALL {
            assert_eq!(f.as_str().parse::<Flag>().unwrap(), f);
        }
    }
}
