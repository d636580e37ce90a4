//! Building an OpenAPI 3.1 document from code: the schemas come from the types' `ToSchema`
//! and `IntoParams` derives (so they follow the serde attributes the server uses), the
//! operations from the server's route table (the consumer) or router (the producer). Both
//! services serve their document at `GET /openapi.json`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use utoipa::openapi::path::ParameterIn;
use utoipa::{IntoParams, ToSchema};

/// Collects operations and the schemas they reference.
#[derive(Debug, Default)]
pub struct DocBuilder {
    schemas: BTreeMap<String, Value>,
    paths: BTreeMap<String, Map<String, Value>>,
}

impl DocBuilder {
    /// A `$ref` to `T`'s schema, which (with every schema it references) joins the document.
    pub fn schema<T: ToSchema>(&mut self) -> Value {
        let mut all = vec![(T::name().into_owned(), T::schema())];
        T::schemas(&mut all);
        for (name, schema) in all {
            self.schemas
                .insert(name, serde_json::to_value(schema).unwrap_or_default());
        }
        json!({"$ref": format!("#/components/schemas/{}", T::name())})
    }

    /// `T`'s fields as query parameters.
    pub fn query<T: IntoParams>(&self) -> Vec<Value> {
        T::into_params(|| Some(ParameterIn::Query))
            .into_iter()
            .map(|p| serde_json::to_value(p).unwrap_or_default())
            .collect()
    }

    /// The `default` answer: every error is a `T` (the admin API's is [`crate::ErrorBody`]).
    pub fn errors<T: ToSchema>(&mut self) -> Value {
        let schema = self.schema::<T>();
        json!({
            "description": "an error: the status's reason, the input at fault, why",
            "content": {"application/json": {"schema": schema}}
        })
    }

    /// Add `operation` (an OpenAPI operation object) as `method` on `path`.
    pub fn operation(&mut self, method: &str, path: &str, operation: Value) {
        self.paths
            .entry(path.to_string())
            .or_default()
            .insert(method.to_ascii_lowercase(), operation);
    }

    /// The document.
    pub fn finish(self, title: &str, description: &str, version: &str) -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": title, "description": description, "version": version},
            "paths": self.paths,
            "components": {
                "schemas": self.schemas,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
            }
        })
    }
}

/// The path parameters of an axum-style path (`/v1/orgs/{org}/settings`) as OpenAPI
/// parameters; `integer` names those that are numbers.
pub fn path_params(path: &str, integer: &[&str]) -> Vec<Value> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = if integer.contains(&name) {
                json!({"type": "integer", "format": "int64", "minimum": 0})
            } else {
                json!({"type": "string", "minLength": 1})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

/// A JSON answer with `schema`.
pub fn json_answer(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// A plain-text answer.
pub fn text_answer(description: &str, media_type: &str) -> Value {
    json!({"description": description, "content": {media_type: {"schema": {"type": "string"}}}})
}
