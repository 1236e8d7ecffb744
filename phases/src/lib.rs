//! bosun-phases: the phase engine and the phases of bosun's workflows.
