"""Which of MLflow's server tests apply to repro, and why the others do not.

Every test MLflow ships in the three files the harness runs either applies (and must pass
against `repro serve`) or is listed here with the reason it does not. docs/mlflow-tests.md
is made from a run of the harness and these reasons (scripts/mlflow-tests-table.py).

Reasons are matched against the test's name (without its parameters), first by the exact
names below, then by the name patterns.

Three kinds of entry:
- NOT_APPLICABLE / PATTERNS: the test cannot apply to repro (outside its scope, refused by
  design, or failing against a real `mlflow server` 3.17.2 too); it is skipped.
- GAPS: the test applies and fails today; it runs as a strict xfail, so it is reported, and
  the harness fails the day it passes until it is taken off this list.
"""

import re

SCOPE_GENAI = (
    "GenAI: traces, spans and assessments are MLflow's LLM observability; repro records "
    "training runs and serves no trace store"
)
SCOPE_GATEWAY = (
    "the AI gateway (secrets, endpoints, providers, model definitions) is an MLflow service, "
    "not experiment tracking; repro keeps no secrets by design"
)
SCOPE_EVAL = "GenAI evaluation datasets, scorers and prompt runs are outside repro's scope"
SCOPE_ISSUES = "GenAI issue tracking (LLM quality issues) is outside repro's scope"
INTERNALS = "asserts on MLflow's own server internals (its SQLAlchemy store, Flask handlers), not on the wire"
FILE_LAYOUT = (
    "asserts that artifacts land as a plain file tree under --artifacts-destination; repro "
    "keeps them content-addressed and verified (the wire behaviour is covered by the other tests)"
)
SERVER_FLAGS = "starts MLflow's server with MLflow-only flags or environment variables"
OLDER_TEST = "fails against a real `mlflow server` 3.17.2 too: "
FILE_ROOT = (
    "assumes runs' artifacts go straight to the server's local --default-artifact-root "
    "(file://); repro always serves them through the mlflow-artifacts proxy from its own store"
)
DIRECT_DB = (
    "writes MLflow's own SQLite file directly (the suite's tracking_uri_mock points the "
    "MLflow client, CLI or MlflowClient(backend_store_uri), at it), never through the server"
)
SOURCE_MISMATCH = OLDER_TEST + (
    "MLflow 3.17.2 refuses the test's 'runs:/run_id/model' source whose run is not the "
    "run_id passed ('The run_id request parameter must identify the resource that contains "
    "the source')"
)

NOT_APPLICABLE = {
    "test_get_metric_history_bulk_interval_respects_max_results": OLDER_TEST
    + "the test expects MLflow 3.11's sampling by step; 3.17.2 samples by row (repro as 3.17.2 does)",
    "test_create_model_version_with_non_local_source": OLDER_TEST
    + "3.17.2 refuses a source outside the run's artifact folder that the test expects to pass",
    "test_get_run_and_experiment_graphql": SOURCE_MISMATCH,
    "test_create_and_query_model_version_flow": SOURCE_MISMATCH,
    "test_get_model_version": SOURCE_MISMATCH,
    "test_update_model_version_flow": SOURCE_MISMATCH,
    "test_delete_model_version_flow": SOURCE_MISMATCH,
    "test_set_delete_model_version_tag_flow": SOURCE_MISMATCH,
    "test_set_model_version_tag_with_empty_string_as_value": SOURCE_MISMATCH,
    "test_set_delete_registered_model_alias_and_get_model_version_by_alias_flow": SOURCE_MISMATCH,
    "test_copy_model_version_flow": SOURCE_MISMATCH,
    "test_mlflow_artifacts_example": OLDER_TEST
    + "it runs MLflow's examples/mlflow_artifacts folder, which the mlflow package does not ship",
    "test_delete_restore_experiment_cli": DIRECT_DB,
    "test_rename_experiment_cli": DIRECT_DB,
    "test_rest_get_model_version_artifact_api_proxied_artifact_root": DIRECT_DB,
    "test_create_model_version_with_validation_regex": SERVER_FLAGS
    + " (MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX, through MLflow's own launcher)",
    "test_artifacts": FILE_ROOT,
    "test_create_model_version_with_path_source": FILE_ROOT,
    "test_create_model_version_with_file_uri": FILE_ROOT,
    "test_mlflow_artifacts_rest_apis": FILE_LAYOUT,
    "test_log_artifact": FILE_LAYOUT,
    "test_update_registered_model_flow": (
        "refused by design: the test renames the model to 'UpdateRMTest 2'; repro model names have "
        "no spaces, so NAME@VERSION stays one word in every shell command (a rename to a name "
        "without one works, and is an event in the registry's chain)"
    ),
    "test_create_logged_model": (
        "refused by design: the test names source run '123', which this store does not hold; a "
        "logged model's source run is lineage repro vouches for, so it must be a run of the store"
    ),
    "test_create_get_search_experiment": (
        "refused by design: the test creates an experiment with artifact_location "
        "'my_location'; repro keeps every artifact in its own store and refuses a location it "
        "does not serve rather than record a promise a client might act on"
    ),

    "test_get_metric_history_bulk_calls_optimized_impl_when_expected": INTERNALS,
    "test_log_url_includes_workspace_when_set": "MLflow workspaces (multi-tenancy) are not a repro feature",
    "test_gateway_proxy_handler_rejects_invalid_requests": SCOPE_GATEWAY,
    "test_rest_store_logs_spans_via_otel_endpoint": SCOPE_GENAI,
    "test_calculate_trace_filter_correlation": SCOPE_GENAI,
    "test_query_trace_metrics": SCOPE_GENAI,
}

# Tests that apply and still fail, each run as a strict xfail (remove an entry when it
# passes). None are left.
GAPS: dict = {}

PATTERNS = [
    (r"trace|span|assessment", SCOPE_GENAI),
    (r"secret|endpoint|provider|model_definition|list_models$", SCOPE_GATEWAY),
    (r"evaluation_dataset|dataset_to_experiments|dataset_from_experiments|"
     r"add_multiple_experiments|dataset_experiment_association|idempotent_(add|remove)_experiments|"
     r"add_remove_experiments|scorer|online_scoring|promptlab", SCOPE_EVAL),
    (r"_issue", SCOPE_ISSUES),
]


def _name(nodeid):
    return nodeid.split("::")[-1].split("[")[0]


def gap(nodeid):
    """The open gap a test that applies still fails on, or None."""
    return GAPS.get(_name(nodeid))


def reason(nodeid):
    """The reason the test at this pytest node id does not apply, or None when it does."""
    name = _name(nodeid)
    if name in NOT_APPLICABLE:
        return NOT_APPLICABLE[name]
    for pattern, why in PATTERNS:
        if re.search(pattern, name):
            return why
    return None
