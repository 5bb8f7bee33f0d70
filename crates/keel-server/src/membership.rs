//! Cluster membership: member and cluster ids derived exactly as etcd 3.4 derives them,
//! and the membership record kept in the backend and in snapshot files.
//!
//! Member id (etcd `membership.NewMember` without a time): SHA-1 over the member's peer
//! URLs sorted as strings and concatenated, followed by the cluster token; the first 8
//! bytes of the digest, big endian. Cluster id (etcd `RaftCluster.genID`): SHA-1 over the
//! member ids sorted ascending, each as 8 bytes big endian; first 8 bytes, big endian.
//! URLs are written as Go's `url.URL.String()` writes them: no trailing `/` for an
//! empty path.
//!
//! The record is `keelpb.Membership` (protobuf) with `version` = [`MEMBERSHIP_VERSION`].

use std::collections::BTreeMap;

use keel_proto::keelpb;
use prost::Message as _;
use sha1::{Digest, Sha1};
use url::Url;

use crate::config::InitialMember;

/// Version of the membership record format.
pub const MEMBERSHIP_VERSION: u32 = 1;

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Member id.
    pub id: u64,
    /// `--name` (empty until the member published itself, for members added later).
    pub name: String,
    /// Advertised peer URLs, as Go writes them.
    pub peer_urls: Vec<String>,
    /// Advertised client URLs (empty until the member published them).
    pub client_urls: Vec<String>,
    /// Whether the member is a learner.
    pub is_learner: bool,
}

/// The cluster: its id and members by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Cluster id.
    pub cluster_id: u64,
    /// Members by id.
    pub members: BTreeMap<u64, Member>,
}

/// A URL as Go's `url.URL.String()` writes it (`http://host:port`, no trailing slash for
/// an empty path), which is what etcd hashes.
pub fn go_url_string(url: &Url) -> String {
    let s = url.as_str();
    if url.path() == "/" && url.query().is_none() && url.fragment().is_none() {
        s.strip_suffix('/').unwrap_or(s).to_owned()
    } else {
        s.to_owned()
    }
}

/// etcd's member id for `peer_urls` (already in Go form) and the cluster token.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut sorted: Vec<&String> = peer_urls.iter().collect();
    sorted.sort();
    let mut hasher = Sha1::new();
    for url in sorted {
        hasher.update(url.as_bytes());
    }
    hasher.update(token.as_bytes());
    first_8_bytes(&hasher.finalize())
}

/// etcd's cluster id for a set of member ids.
pub fn cluster_id(member_ids: impl IntoIterator<Item = u64>) -> u64 {
    let mut ids: Vec<u64> = member_ids.into_iter().collect();
    ids.sort_unstable();
    let mut hasher = Sha1::new();
    for id in ids {
        hasher.update(id.to_be_bytes());
    }
    first_8_bytes(&hasher.finalize())
}

fn first_8_bytes(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

impl Membership {
    /// The membership of a new cluster from `--initial-cluster` and its token, as etcd's
    /// `NewClusterFromURLsMap` builds it (a name listed several times is one member with
    /// several peer URLs).
    pub fn bootstrap(initial: &[InitialMember], token: &str) -> Result<Membership, String> {
        let mut by_name: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for m in initial {
            by_name
                .entry(m.name.as_str())
                .or_default()
                .push(go_url_string(&m.peer_url));
        }
        let mut members = BTreeMap::new();
        for (name, peer_urls) in by_name {
            let id = member_id(&peer_urls, token);
            if id == 0 {
                return Err(format!("cannot use {id:x} as member id"));
            }
            let member = Member {
                id,
                name: name.to_owned(),
                peer_urls,
                client_urls: Vec::new(),
                is_learner: false,
            };
            if let Some(existing) = members.insert(id, member) {
                return Err(format!(
                    "member exists with identical ID {id:x} (name {:?})",
                    existing.name
                ));
            }
        }
        Ok(Membership {
            cluster_id: cluster_id(members.keys().copied()),
            members,
        })
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// The record as its protobuf message.
    pub fn to_proto(&self) -> keelpb::Membership {
        keelpb::Membership {
            version: MEMBERSHIP_VERSION,
            cluster_id: self.cluster_id,
            members: self
                .members
                .values()
                .map(|m| keelpb::Member {
                    id: m.id,
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                    client_urls: m.client_urls.clone(),
                    is_learner: m.is_learner,
                })
                .collect(),
        }
    }

    /// Decodes a record written by [`Membership::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Membership, String> {
        let pb = keelpb::Membership::decode(bytes).map_err(|e| e.to_string())?;
        Membership::from_proto(pb)
    }

    /// The record from its protobuf message, checking its version.
    pub fn from_proto(pb: keelpb::Membership) -> Result<Membership, String> {
        if pb.version != MEMBERSHIP_VERSION {
            return Err(format!("unknown membership format version {}", pb.version));
        }
        if pb.cluster_id == 0 || pb.members.is_empty() {
            return Err("membership has no cluster id or no members".to_owned());
        }
        let members = pb
            .members
            .into_iter()
            .map(|m| {
                (
                    m.id,
                    Member {
                        id: m.id,
                        name: m.name,
                        peer_urls: m.peer_urls,
                        client_urls: m.client_urls,
                        is_learner: m.is_learner,
                    },
                )
            })
            .collect();
        Ok(Membership {
            cluster_id: pb.cluster_id,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn initial(pairs: &[(&str, &str)]) -> Vec<InitialMember> {
        pairs
            .iter()
            .map(|(name, url)| InitialMember {
                name: (*name).to_owned(),
                peer_url: url.parse().expect("test URL"),
            })
            .collect()
    }

    #[test]
    fn ids_match_etcd() {
        // `etcd --name default` with every flag at its default: member 8e9e05c52164694d,
        // cluster cdf818194e3a8c32.
        let m = Membership::bootstrap(
            &initial(&[("default", "http://localhost:2380")]),
            "etcd-cluster",
        )
        .expect("bootstrap");
        assert_eq!(
            m.members.keys().copied().collect::<Vec<_>>(),
            vec![0x8e9e_05c5_2164_694d]
        );
        assert_eq!(m.cluster_id, 0xcdf8_1819_4e3a_8c32);
    }

    #[test]
    fn go_urls_have_no_trailing_slash() {
        let url: Url = "http://127.0.0.1:2380".parse().expect("url");
        assert_eq!(go_url_string(&url), "http://127.0.0.1:2380");
        let url: Url = "http://127.0.0.1:2380/x".parse().expect("url");
        assert_eq!(go_url_string(&url), "http://127.0.0.1:2380/x");
    }

    #[test]
    fn record_round_trips_and_checks_version() {
        let m = Membership::bootstrap(
            &initial(&[
                ("a", "http://127.0.0.1:1"),
                ("b", "http://127.0.0.1:2"),
                ("a", "http://127.0.0.1:3"),
            ]),
            "tok",
        )
        .expect("bootstrap");
        assert_eq!(m.members.len(), 2);
        assert_eq!(Membership::decode(&m.encode()), Ok(m.clone()));
        let mut pb = m.to_proto();
        pb.version = 2;
        assert!(Membership::from_proto(pb).is_err());
    }
}
