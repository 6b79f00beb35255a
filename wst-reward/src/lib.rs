//! Rewards for **wst**: math answer extraction and equivalence (no libtorch), reward-model
//! scoring behind the `reward-model` feature, and weighted combinations of named components.
