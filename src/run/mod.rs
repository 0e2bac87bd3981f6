//! Running cases: provisioning accounts, executing steps against real servers, in parallel.

pub mod accounts;
pub mod case;
