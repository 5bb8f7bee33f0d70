//! Operation counters for `/v2/stats/store`, serialised as etcd's `Stats`.

use serde::Serialize;

/// etcd's store statistics. Counters only go up; `watchers` is filled in when read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Stats {
    /// Successful gets.
    #[serde(rename = "getsSuccess")]
    pub get_success: u64,
    /// Failed gets.
    #[serde(rename = "getsFail")]
    pub get_fail: u64,
    /// Successful sets.
    #[serde(rename = "setsSuccess")]
    pub set_success: u64,
    /// Failed sets (etcd also counts creates that fail on a non-directory parent here).
    #[serde(rename = "setsFail")]
    pub set_fail: u64,
    /// Successful deletes.
    #[serde(rename = "deleteSuccess")]
    pub delete_success: u64,
    /// Failed deletes.
    #[serde(rename = "deleteFail")]
    pub delete_fail: u64,
    /// Successful updates.
    #[serde(rename = "updateSuccess")]
    pub update_success: u64,
    /// Failed updates.
    #[serde(rename = "updateFail")]
    pub update_fail: u64,
    /// Successful creates.
    #[serde(rename = "createSuccess")]
    pub create_success: u64,
    /// Failed creates.
    #[serde(rename = "createFail")]
    pub create_fail: u64,
    /// Successful compare-and-swaps.
    #[serde(rename = "compareAndSwapSuccess")]
    pub compare_and_swap_success: u64,
    /// Failed compare-and-swaps.
    #[serde(rename = "compareAndSwapFail")]
    pub compare_and_swap_fail: u64,
    /// Successful compare-and-deletes.
    #[serde(rename = "compareAndDeleteSuccess")]
    pub compare_and_delete_success: u64,
    /// Failed compare-and-deletes.
    #[serde(rename = "compareAndDeleteFail")]
    pub compare_and_delete_fail: u64,
    /// Nodes removed by expiry.
    #[serde(rename = "expireCount")]
    pub expire_count: u64,
    /// Watchers currently registered.
    pub watchers: u64,
}

impl Stats {
    /// The JSON etcd serves at `/v2/stats/store`.
    pub fn to_json(&self) -> String {
        crate::json::to_string(self)
    }
}
