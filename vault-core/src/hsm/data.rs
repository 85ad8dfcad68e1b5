//! Small data objects a token keeps for the vault (`CKO_DATA`): the audit head the token last
//! saw, so that another machine holding the token also catches a rolled-back log. Each is a
//! token object, private (read and written only while logged in), found by its label.

use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};

use super::{HsmError, TokenSession};

/// The application name the objects carry (`CKA_APPLICATION`).
const APPLICATION: &[u8] = b"breakglass";

/// A data object as [`TokenSession::read_data`] found it.
pub struct TokenData {
    handle: ObjectHandle,
    /// Its value (`CKA_VALUE`).
    pub value: Vec<u8>,
}

impl TokenSession<'_> {
    fn find_data(&self, label: &str) -> Result<Option<ObjectHandle>, HsmError> {
        let template = [
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let found = self
            .session
            .find_objects(&template)
            .map_err(self.error("finding a data object"))?;
        Ok(found.first().copied())
    }

    /// The data object labelled `label`, if the token has one.
    pub fn read_data(&self, label: &str) -> Result<Option<TokenData>, HsmError> {
        let Some(handle) = self.find_data(label)? else {
            return Ok(None);
        };
        let attributes = self
            .session
            .get_attributes(handle, &[AttributeType::Value])
            .map_err(self.error("reading a data object"))?;
        Ok(attributes.into_iter().find_map(|a| match a {
            Attribute::Value(value) => Some(TokenData { handle, value }),
            _ => None,
        }))
    }

    /// Sets the data object labelled `label` to `value`: `existing` (what [`read_data`] found
    /// in this session) has its value replaced, else a new private token object is made. A
    /// token without room for it says so ([`HsmError`] naming the token and
    /// `CKR_DEVICE_MEMORY`).
    ///
    /// [`read_data`]: TokenSession::read_data
    pub fn write_data(
        &self,
        label: &str,
        value: &[u8],
        existing: Option<&TokenData>,
    ) -> Result<(), HsmError> {
        let existing = existing.map(|data| data.handle);
        if let Some(handle) = existing {
            match self
                .session
                .update_attributes(handle, &[Attribute::Value(value.to_vec())])
            {
                Ok(()) => return Ok(()),
                // A token that cannot change a value in place (SoftHSM): replaced below.
                Err(Pkcs11Error::Pkcs11(RvError::AttributeReadOnly, _)) => {}
                Err(e) => return Err(self.error("updating a data object")(e)),
            }
        }
        // The new object first: a token without room for it keeps the old one.
        self.session
            .create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Modifiable(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Application(APPLICATION.to_vec()),
                Attribute::Value(value.to_vec()),
            ])
            .map_err(self.error("storing a data object"))?;
        if let Some(handle) = existing {
            self.session
                .destroy_object(handle)
                .map_err(self.error("replacing a data object"))?;
        }
        Ok(())
    }
}
