//! The OpenAPI document: generated from the routes' derives, then refined with what the
//! derives cannot say.

use actix_web::App;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};
use utoipa_actix_web::AppExt;

use crate::routes;

/// The OpenAPI document of every route.
pub fn openapi() -> OpenApi {
    let app = App::new()
        .into_utoipa_app()
        .openapi(base_document())
        .service(routes::scope())
        .service(routes::metrics_route());
    refine(app.split_for_parts().1)
}

/// What the derives cannot say, said in the document itself, so that it describes what the
/// API accepts: an object `ref` is a subject (at least one byte), a batch holds at least one
/// record, and an unsigned 64-bit integer (a timestamp, an offset) is `uint64`, not the
/// derives' `int64`, which would put its upper half out of range.
fn refine(document: OpenApi) -> OpenApi {
    use serde_json::Value;
    let Ok(mut value) = serde_json::to_value(&document) else {
        return document;
    };
    if let Some(kinds) = value
        .pointer_mut("/components/schemas/ObjectValue/oneOf")
        .and_then(Value::as_array_mut)
    {
        for kind in kinds {
            if let Some(Value::Object(reference)) = kind.pointer_mut("/properties/ref") {
                reference.insert("minLength".into(), 1.into());
            }
        }
    }
    unsigned_64(&mut value);
    for path in ["/v1/assertions/batch", "/v1/votes/batch"] {
        let pointer = format!(
            "/paths/{}/post/requestBody/content/application~1json/schema",
            path.replace('/', "~1")
        );
        if let Some(Value::Object(schema)) = value.pointer_mut(&pointer) {
            schema.insert("minItems".into(), 1.into());
        }
    }
    serde_json::from_value(value).unwrap_or(document)
}

fn base_document() -> OpenApi {
    let mut components = ComponentsBuilder::new().build();
    components.add_security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("StemeDB")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Signed assertions by agents that disagree, weighted votes, and lenses that resolve them.",
                ))
                .build(),
        )
        .components(Some(components))
        .build()
}

/// Marks every schema of an unsigned 64-bit integer (`int64` with a minimum of 0, as the
/// derives write `u64`) `uint64` with its maximum, everywhere in `value`.
fn unsigned_64(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let unsigned = map.get("format").and_then(Value::as_str) == Some("int64")
                && map.get("minimum").and_then(Value::as_f64) == Some(0.0);
            if unsigned {
                map.insert("format".into(), "uint64".into());
                map.insert("maximum".into(), u64::MAX.into());
            }
            map.values_mut().for_each(unsigned_64);
        }
        Value::Array(items) => items.iter_mut().for_each(unsigned_64),
        _ => {}
    }
}
