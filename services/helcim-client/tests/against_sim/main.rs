//! The client against the simulator over real HTTP: every quirk read, paging to the
//! end, limits and retries honoured, errors typed.

mod errors;
mod helpers;
mod limits_and_retries;
mod reading;
