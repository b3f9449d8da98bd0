//! `repro model …`: the registry's subcommands, in a file of their own because they are
//! many (the rest of the command line is in `cli.rs`).

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Register a run's artifact as the next version of a model.
    ///
    /// The artifact must be one of the run's outputs (or a file inside an output folder);
    /// the version pins the run's lineage digest and the artifact's digests, for good.
    ///
    /// Example: repro model register latest --name pricing --artifact model.pkl
    Register {
        /// The run (id, 4+ character prefix, name, `latest`, or NAME@V).
        run: String,
        /// The model's name (letters, digits, '-', '_', '.').
        #[arg(long)]
        name: String,
        /// The artifact: an output of the run, or a file inside an output folder.
        #[arg(long, value_name = "PATH")]
        artifact: PathBuf,
    },

    /// List models with their versions and which version holds each stage.
    ///
    /// Example: repro model ls
    Ls,

    /// Show a model (NAME: every version) or one version (NAME@V, NAME@STAGE) with its history.
    ///
    /// Example: repro model show pricing@prod
    Show {
        /// NAME, NAME@V or NAME@STAGE.
        model: String,
    },

    /// Move a version into a stage, if the stage's policy in repro.toml allows it.
    ///
    /// Every unmet requirement is listed and nothing changes when it does not (exit 1).
    ///
    /// Example: repro model promote pricing@3 --to staging
    Promote {
        /// NAME@V or NAME@STAGE.
        model: String,
        /// The stage to move it to (dev, staging, prod, or a stage of repro.toml).
        #[arg(long, value_name = "STAGE")]
        to: String,
    },

    /// Approve a version for a stage. One person's approvals count once.
    ///
    /// Example: repro model approve pricing@3 --stage prod --comment "reviewed the replay"
    Approve {
        /// NAME@V or NAME@STAGE.
        model: String,
        /// The stage the approval is for.
        #[arg(long, value_name = "STAGE")]
        stage: String,
        /// Your private key: approvals are signed (default: $REPRO_KEY_DIR/repro.key, else
        /// ~/.config/repro/repro.key, as `repro key generate` writes it). What counts is the
        /// key: a stage with signed_approvals counts keys listed in [trust] approvers.
        #[arg(long, value_name = "KEYFILE")]
        key: Option<PathBuf>,
        /// The name written into the signed statement (default: git's user.name <user.email>).
        /// Shown as your claim; the registry names a trusted key by its [trust] name.
        #[arg(long = "as", value_name = "WHO")]
        as_who: Option<String>,
        /// Why, for the record.
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
    },

    /// Archive a version: it leaves its stage and cannot be promoted again; history stays.
    ///
    /// Example: repro model archive pricing@2 --reason "superseded by v3"
    Archive {
        /// NAME@V or NAME@STAGE.
        model: String,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },

    /// Rename a model: an event in the registry's chain. Versions, history and signatures go
    /// with it; the old name keeps resolving (with a note) until a model takes it again.
    ///
    /// Example: repro model rename pricing pricing-eu
    Rename {
        /// The model's name now.
        old: String,
        /// Its new name.
        new: String,
    },

    /// Bring an external version's files into the store: each is read, hashed (BLAKE3 and
    /// SHA-256) and pinned by an `adopt` event, so fsck, verify and promotions check them.
    /// An s3:// source (with the AWS_* variables), a file:// URI or a path is read directly;
    /// for any other (gs://, runs:/ of another server) copy the files here first and pass
    /// --from. The version still has no run: policies that need a run's evidence stay unmet.
    ///
    /// Example: repro model adopt churn@1    (or: gsutil cp -r gs://team/churn ./churn && repro model adopt churn@1 --from ./churn)
    Adopt {
        /// NAME@V or NAME@STAGE.
        model: String,
        /// A local copy of the source's files (a folder or one file).
        #[arg(long, value_name = "PATH")]
        from: Option<PathBuf>,
    },

    /// Sign a version's provenance (in-toto statement, SLSA provenance, DSSE envelope).
    ///
    /// Example: repro model sign pricing@3 --key ~/.config/repro/repro.key
    Sign {
        /// NAME@V or NAME@STAGE.
        model: String,
        /// The private key (default: $REPRO_KEY_DIR/repro.key, else ~/.config/repro/repro.key).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },

    /// Write a version's signed attestations: DSSE envelopes as JSON, one per line — its
    /// provenance (`model sign`), then the signed verdicts of its run's replays (`replay --key`).
    ///
    /// Example: repro model attest pricing@3 -o pricing-3.intoto.jsonl
    Attest {
        /// NAME@V or NAME@STAGE.
        model: String,
        /// Write to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },

    /// Write a version's CycloneDX 1.6 ML-BOM: the model (machine-learning-model, with its
    /// model card), the training data, every installed package (with its PURL) and the
    /// training run (formulation). The same version gives the same bytes.
    ///
    /// Considerations (intended use, limitations …) come from model_card.md beside .repro
    /// and [model_card] in .repro/repro.toml. --sign records the BOM as a signed in-toto
    /// statement (predicate type https://cyclonedx.org/bom), listed by `repro model attest`.
    ///
    /// Example: repro model bom pricing@3 -o pricing-3.cdx.json --sign
    Bom {
        /// NAME@V or NAME@STAGE.
        model: String,
        /// Write to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also sign it and record the signature (an `attest` event).
        #[arg(long)]
        sign: bool,
        /// The private key for --sign (default: $REPRO_KEY_DIR/repro.key, else
        /// ~/.config/repro/repro.key).
        #[arg(long, value_name = "FILE", requires = "sign")]
        key: Option<PathBuf>,
    },

    /// Write a version's model card (Markdown), from the same facts as its BOM, with the
    /// sections of your model_card.md.
    ///
    /// Example: repro model card pricing@3 -o MODEL_CARD.md
    Card {
        /// NAME@V or NAME@STAGE.
        model: String,
        /// Write to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },

    /// Check a version: the registry's event chain, the run's lineage and objects, the
    /// artifact's digests and every signature. Exit 1 when anything fails.
    ///
    /// Example: repro model verify pricing@prod --key repro.pub
    Verify {
        /// NAME@V or NAME@STAGE.
        model: String,
        /// A public key you trust (PEM); a signature by it must verify. A bare file name
        /// not found here is looked for in your key folder (`--key repro.pub`: your own key).
        #[arg(long, value_name = "PUBFILE")]
        key: Option<PathBuf>,
    },
}
