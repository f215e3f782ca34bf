//! The API contract in the test kit: every answer `TestApp` receives is checked
//! against the operation's response schema in the live `/openapi.json`, with a real
//! JSON Schema validator (the `jsonschema` crate, draft 2020-12, formats asserted).
//! So each integration test that calls the API also checks the document.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use serde_json::{Value, json};

/// The document and the validators built from it, per operation and status.
pub struct Contract {
    doc: Value,
    validators: Mutex<HashMap<String, Option<Arc<jsonschema::Validator>>>>,
}

impl Contract {
    /// The contract of a fetched document.
    pub fn new(doc: Value) -> Contract {
        Contract {
            doc,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// The document's path template for a concrete path (query string dropped), a
    /// template without a parameter winning over one with.
    pub fn template(&self, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap_or(path);
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let paths = self.doc["paths"].as_object()?;
        paths
            .keys()
            .filter(|t| {
                let (ts, ps): (Vec<&str>, Vec<&str>) =
                    (t.split('/').collect(), path.split('/').collect());
                ts.len() == ps.len()
                    && ts
                        .iter()
                        .zip(&ps)
                        .all(|(t, p)| *t == *p || (t.starts_with('{') && !p.is_empty()))
            })
            .min_by_key(|t| t.matches('{').count())
            .cloned()
    }

    /// The validator for the JSON answer of `method template` with `status`; `None`
    /// when the document gives that answer no JSON body.
    fn validator(
        &self,
        method: &str,
        template: &str,
        status: u16,
    ) -> Result<Option<Arc<jsonschema::Validator>>, String> {
        let key = format!("{method} {template} {status}");
        if let Some(v) = self.validators.lock().expect("not poisoned").get(&key) {
            return Ok(v.clone());
        }
        let op = &self.doc["paths"][template][method];
        if !op.is_object() {
            return Err(format!("{method} {template} is not documented"));
        }
        let response = &op["responses"][status.to_string()];
        if !response.is_object() {
            return Err(format!(
                "{method} {template} answered {status}, which is not documented"
            ));
        }
        let validator = match response["content"]["application/json"].get("schema") {
            None => None,
            Some(schema) => {
                let mut root = schema.clone();
                if let Some(obj) = root.as_object_mut() {
                    obj.insert("components".to_owned(), self.doc["components"].clone());
                } else {
                    root = json!({"allOf": [schema], "components": self.doc["components"]});
                }
                let v = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .build(&root)
                    .map_err(|e| format!("{key}: the document's schema does not compile: {e}"))?;
                Some(Arc::new(v))
            }
        };
        self.validators
            .lock()
            .expect("not poisoned")
            .insert(key, validator.clone());
        Ok(validator)
    }

    /// Checks one answer; the reasons it breaks the document, if any.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        status: StatusCode,
        body: &Value,
        raw_len: usize,
    ) -> Result<(), String> {
        let Some(template) = self.template(path) else {
            // Paths the server does not route answer 404 with the error body.
            return if status == StatusCode::NOT_FOUND {
                Ok(())
            } else {
                Err(format!("{path} is not documented"))
            };
        };
        let m = if *method == Method::HEAD {
            "get".to_owned()
        } else {
            method.as_str().to_lowercase()
        };
        let op_exists = self.doc["paths"][&template][&m].is_object();
        if !op_exists {
            // A method the path does not have: 405 with the error body.
            return if status == StatusCode::METHOD_NOT_ALLOWED {
                Ok(())
            } else {
                Err(format!(
                    "{m} {template} answered {status} but is not documented"
                ))
            };
        }
        match self.validator(&m, &template, status.as_u16())? {
            // Text bodies: the metrics exposition and the portal's page and assets.
            None if raw_len == 0
                || *method == Method::HEAD
                || template == "/metrics"
                || template.starts_with("/portal") =>
            {
                Ok(())
            }
            None => Err(format!(
                "{m} {template} {status} has no documented body but answered {body}"
            )),
            Some(_) if *method == Method::HEAD => Ok(()),
            Some(v) => {
                let errors: Vec<String> = v
                    .iter_errors(body)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .collect();
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{m} {template} {status} does not match its schema:\n{}\n{body}",
                        errors.join("\n")
                    ))
                }
            }
        }
    }
}
