//! Fault points: named places where the end-to-end tests stop an operation as a crash or a
//! killed terminal would (`BREAKGLASS_TEST_FAULT=<name>`), to prove that what follows resumes.
//! They exist only in builds with the `test-faults` feature, which only the tests turn on (as
//! a dev-dependency feature); in any other build [`point`] does nothing.

/// Stops here with [`VaultError::FaultPoint`](crate::vault::VaultError::FaultPoint) when
/// `BREAKGLASS_TEST_FAULT` names this point (test builds only).
#[cfg(feature = "test-faults")]
pub fn point(name: &str) -> Result<(), crate::Error> {
    if std::env::var("BREAKGLASS_TEST_FAULT").as_deref() == Ok(name) {
        return Err(crate::vault::VaultError::FaultPoint(name.to_owned()).into());
    }
    Ok(())
}

/// Does nothing: this build has no fault points.
#[cfg(not(feature = "test-faults"))]
#[inline(always)]
pub fn point(_name: &str) -> Result<(), crate::Error> {
    Ok(())
}
