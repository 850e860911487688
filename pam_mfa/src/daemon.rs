//! mfad as the flow sees it: one login, driven to its end.
//! `transport.rs` implements [`Mfad`] over the login socket or the bus; the
//! tests over a script.

use mfa_dbus::{ClientError, Conversation, LoginRequest, Outcome};

/// Why mfad gave no decision. (Boxed: `ClientError` is large and this is
/// the rare path.)
#[derive(Debug)]
pub struct LoginError(pub Box<ClientError>);

impl From<ClientError> for LoginError {
    fn from(error: ClientError) -> Self {
        LoginError(Box::new(error))
    }
}

/// mfad, as the flow needs it: one login, driven to its end.
pub trait Mfad {
    /// Where mfad is reached, for the debug log.
    fn describe(&self) -> String;
    fn login(
        &self,
        request: &LoginRequest,
        conversation: &mut dyn Conversation,
    ) -> Result<Outcome, LoginError>;
}
