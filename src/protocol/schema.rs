//! OpenAPI schemas of the wire types (for the HTTP API's generated document): hashes, agent ids
//! and signatures are lowercase hex strings of fixed length.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::{AgentId, Hash, Signature};

fn hex_string(hex_digits: usize, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(hex_digits))
        .max_length(Some(hex_digits))
        .pattern(Some(format!("^[0-9a-f]{{{hex_digits}}}$")))
        .description(Some(description))
        .into()
}

impl PartialSchema for Hash {
    fn schema() -> RefOr<Schema> {
        hex_string(64, "A blake3 content hash, 64 lowercase hex digits.")
    }
}
impl ToSchema for Hash {}

impl PartialSchema for AgentId {
    fn schema() -> RefOr<Schema> {
        hex_string(64, "An agent's Ed25519 public key, 64 lowercase hex digits.")
    }
}
impl ToSchema for AgentId {}

impl PartialSchema for Signature {
    fn schema() -> RefOr<Schema> {
        hex_string(128, "An Ed25519 signature, 128 lowercase hex digits.")
    }
}
impl ToSchema for Signature {}
