//! Throw-away SoftHSM tokens. Being implemented (issue "Foundation").
