//! One schema for both backends (migrations/postgres and migrations/sqlite agree).

diesel::table! {
    organisations (id) {
        id -> Text,
        name -> Text,
        display_name -> Text,
        policy -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        org_id -> Text,
        username -> Text,
        email -> Text,
        display_name -> Nullable<Text>,
        role -> Text,
        status -> Text,
        password_hash -> Nullable<Text>,
        password_changed_at -> Nullable<Timestamp>,
        must_change_password -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    password_history (id) {
        id -> Text,
        user_id -> Text,
        password_hash -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(users -> organisations (org_id));
diesel::joinable!(password_history -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(organisations, users, password_history);

diesel::table! {
    lockouts (login_key) {
        login_key -> Text,
        failures -> Integer,
        lock_count -> Integer,
        locked_until -> Nullable<Timestamp>,
        permanent -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    ip_blocks (ip) {
        ip -> Text,
        blocked_until -> Timestamp,
        block_count -> Integer,
        reason -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        kind -> Text,
        recipient -> Text,
        subject -> Text,
        body_text -> Nullable<Text>,
        body_html -> Nullable<Text>,
        payload -> Nullable<Text>,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        status -> Text,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}
