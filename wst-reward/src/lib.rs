//! Rewards for **wst**: math answer extraction and equivalence (no libtorch), reward-model
//! scoring behind the `reward-model` feature, and weighted combinations of named components.

#[cfg(feature = "reward-model")]
pub mod reward_model;

#[cfg(feature = "reward-model")]
pub use reward_model::{hh_rlhf_query, hh_rlhf_response, RewardModelError, RewardModelReward};
