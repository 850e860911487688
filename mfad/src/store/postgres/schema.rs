//! The PostgreSQL schema, created and migrated by mfad itself: ordered
//! steps, each in one transaction under an advisory lock, so that many
//! hosts starting at once take turns and none sees half a schema. The
//! tables mirror the SQLite store's (`user` is reserved here: `user_name`).

/// The schema version this mfad writes.
pub const VERSION: i64 = 3;

/// Any fixed number: the advisory lock every mfad takes to migrate.
pub const LOCK: i64 = 0x6d66_615f_7363_6865;

/// Each version as the statements that make it from the one before.
pub const STEPS: &[(i64, &str)] = &[
    (
        1,
        "
CREATE TABLE mfa_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE factors (
    seq       bigserial,
    id        text PRIMARY KEY,
    user_name text NOT NULL,
    kind      text NOT NULL,
    label     text NOT NULL,
    data      bytea NOT NULL,
    counter   bigint NOT NULL,
    confirmed boolean NOT NULL,
    approved  boolean NOT NULL,
    created   bigint NOT NULL,
    last_used bigint NOT NULL,
    expires   bigint NOT NULL
);
CREATE INDEX factors_by_user ON factors (user_name);
CREATE TABLE recovery_codes (
    id        bigserial PRIMARY KEY,
    user_name text NOT NULL,
    hash      text NOT NULL,
    used      boolean NOT NULL,
    created   bigint NOT NULL
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_name);
CREATE TABLE lockout (
    user_name    text PRIMARY KEY,
    failures     integer NOT NULL,
    locked_until bigint NOT NULL
);
CREATE TABLE user_settings (
    user_name text PRIMARY KEY,
    level     text,
    preferred text
);
CREATE TABLE trusted_devices (
    seq       bigserial,
    id        text PRIMARY KEY,
    user_name text NOT NULL,
    device    text NOT NULL,
    created   bigint NOT NULL,
    expires   bigint NOT NULL,
    last_used bigint NOT NULL,
    UNIQUE (user_name, device)
);
",
    ),
    (
        2,
        "
-- every host's login decisions and changes, for mfactl audit
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    host      text NOT NULL,
    time      bigint NOT NULL,
    event     text NOT NULL,
    user_name text NOT NULL,
    service   text NOT NULL,
    rhost     text NOT NULL,
    outcome   text NOT NULL,
    reason    text NOT NULL,
    detail    text NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (time);
CREATE INDEX audit_log_by_user ON audit_log (user_name, time);
",
    ),
    (
        3,
        "
-- an admin's invitation to set up the pending factor it names
CREATE TABLE invitations (
    user_name text PRIMARY KEY,
    factor    text NOT NULL,
    by_uid    bigint NOT NULL,
    created   bigint NOT NULL
);
",
    ),
];
