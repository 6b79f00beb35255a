//! The WST trainer: GRPO on the teacher with student-in-the-loop rewards. It sees the student,
//! reward, prompt source and rollout sink only through the `wst-core` traits.

pub mod eval;
