//! `POST /graphql`: MLflow's GraphQL endpoint, which MLflow's own web UI calls for a run's
//! page, metric charts, artifact lists and dataset searches.
//!
//! The request is MLflow's (`{"query", "operationName", "variables"}`) and so is the answer:
//! `{"data": …, "errors": [message, …] | null}`, with status 200 whatever went wrong inside
//! the query (a malformed request body is a 400 like any other API call's). The document is
//! parsed once, held to MLflow's bounds (`limits`), then validated and run against MLflow's
//! schema (`schema`), whose resolvers answer through the REST handlers.
//!
//! The route is a read behind the same guard as the REST API: every field of the schema,
//! mutations included, only reads.

mod limits;
mod schema;

use std::sync::OnceLock;

use async_graphql::{EmptySubscription, Schema, Variables};
use axum::extract::State as AxState;
use axum::http::Method;
use axum::Json;
use serde_json::{json, Value};

use super::{Reply, S};
use crate::request::{invalid_value, opt_string, Req};
use crate::routes::{Role, Routes};
use crate::ApiError;

type MlflowSchema = Schema<schema::Query, schema::Mutation, EmptySubscription>;

pub(crate) fn routes() -> Routes {
    Routes::new().api(Method::POST, "/graphql", Role::Read, graphql)
}

/// Built on first use: the schema holds no state (the store travels with each request).
fn mlflow_schema() -> &'static MlflowSchema {
    static SCHEMA: OnceLock<MlflowSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::build(schema::Query::default(), schema::Mutation::default(), EmptySubscription)
            .directive(schema::Component)
            .finish()
    })
}

/// MLflow's answer: data (null when the query never ran) and the errors' messages.
fn answer(data: Value, errors: Vec<String>) -> Reply {
    let errors = if errors.is_empty() { Value::Null } else { json!(errors) };
    Ok(Json(json!({ "data": data, "errors": errors })))
}

pub(crate) async fn graphql(AxState(s): S, Req(body): Req) -> Reply {
    let query = match body.get("query") {
        Some(Value::String(q)) => q.clone(),
        Some(other) if !other.is_null() => return Err(invalid_value("query", other, "expected a string")),
        _ => return Err(ApiError::missing_param("query")),
    };
    let operation = opt_string(body.get("operationName"), "operationName")?;
    let variables = match body.get("variables") {
        None | Some(Value::Null) => Variables::default(),
        Some(v @ Value::Object(_)) => Variables::from_json(v.clone()),
        Some(other) => return Err(invalid_value("variables", other, "expected an object")),
    };
    let mut request = async_graphql::Request::new(query).variables(variables).data(s);
    if let Some(name) = operation {
        request = request.operation_name(name);
    }
    // Parsed here and kept in the request, so it is parsed once; bounds before validation,
    // as MLflow checks them, so an over-sized document is refused without further work.
    match request.parsed_query() {
        Err(e) => return answer(Value::Null, vec![e.message]),
        Ok(doc) => {
            if let Some(refusal) = limits::check(doc) {
                return answer(Value::Null, vec![refusal]);
            }
        }
    }
    let response = mlflow_schema().execute(request).await;
    let data = response.data.into_json().map_err(|e| ApiError::internal(format!("cannot write the answer: {e}")))?;
    answer(data, response.errors.into_iter().map(|e| e.message).collect())
}
