//! Datasets, rollout and baseline stores, and reports for **wst**.
//!
//! Loads GSM8K, MATH-500, HH-RLHF and generic tables into [`wst_core::Query`] values, generates
//! the embedded arithmetic task, and stores rollouts and baselines as Parquet. It does not link
//! libtorch.
