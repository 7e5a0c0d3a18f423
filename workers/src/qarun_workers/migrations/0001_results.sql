-- Results: one row per (run, question): the best-scoring answer, or why it failed.
CREATE TABLE results (
    run               text        NOT NULL,
    question_id       text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('validated', 'exhausted', 'failed')),
    title             text        NOT NULL DEFAULT '',
    content           text        NOT NULL DEFAULT '',
    reference_answer  text        NOT NULL DEFAULT '',
    dataset_row       integer,
    answer            text,
    score             double precision,
    best_attempt      integer,
    attempts          integer     NOT NULL DEFAULT 0,
    scorer            text        NOT NULL DEFAULT '',
    failure           text,
    prompt_tokens     bigint      NOT NULL DEFAULT 0,
    completion_tokens bigint      NOT NULL DEFAULT 0,
    cost_usd          double precision NOT NULL DEFAULT 0,
    first_sent_at     timestamptz,
    finished_at       timestamptz NOT NULL,
    stored_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run, question_id)
);

-- Every scored attempt of every question, for improvement-per-attempt statistics.
CREATE TABLE attempts (
    run               text        NOT NULL,
    question_id       text        NOT NULL,
    attempt           integer     NOT NULL,
    answer            text        NOT NULL,
    score             double precision NOT NULL,
    feedback          text,
    model             text        NOT NULL DEFAULT '',
    latency_ms        double precision NOT NULL DEFAULT 0,
    prompt_tokens     integer     NOT NULL DEFAULT 0,
    completion_tokens integer     NOT NULL DEFAULT 0,
    cost_usd          double precision NOT NULL DEFAULT 0,
    retries           integer     NOT NULL DEFAULT 0,
    answered_at       timestamptz NOT NULL,
    PRIMARY KEY (run, question_id, attempt)
);

-- Dead letters as they were published, for inspection through the API.
CREATE TABLE dead_letters (
    run               text        NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  integer     NOT NULL,
    source_offset     bigint      NOT NULL,
    question_id       text        NOT NULL DEFAULT '',
    attempt           integer     NOT NULL DEFAULT 0,
    reason            text        NOT NULL,
    detail            text        NOT NULL,
    original          text        NOT NULL,
    created_at        timestamptz NOT NULL,
    PRIMARY KEY (run, source_topic, source_partition, source_offset)
);

CREATE INDEX results_run_finished ON results (run, finished_at);
CREATE INDEX dead_letters_run_reason ON dead_letters (run, reason);
