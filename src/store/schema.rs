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
        /// `MasterKey::seal("user-email:<id>", …)`; clear only in rows an earlier
        /// release wrote, until start-up seals them (`store::pii::seal_legacy`).
        email_sealed -> Text,
        /// Blind index: hex HMAC-SHA-256 of the lower-cased address (`store::pii`);
        /// NULL marks a row not sealed yet.
        email_index -> Nullable<Text>,
        /// `MasterKey::seal("user-display-name:<id>", …)`.
        display_name_sealed -> Nullable<Text>,
        role -> Text,
        status -> Text,
        /// `MasterKey::seal("password-hash:<id>", phc)`, or a clear PHC string
        /// (`$argon2…`) from an earlier release, wrapped at start-up or next sign-in.
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
        /// `MasterKey::seal("password-history:<id>", phc)`, or a clear legacy PHC.
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
        in_flight -> Integer,
        in_flight_until -> Nullable<Timestamp>,
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
    totp_credentials (user_id) {
        user_id -> Text,
        secret_sealed -> Text,
        confirmed_at -> Nullable<Timestamp>,
        last_step -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    recovery_codes (code_hash) {
        code_hash -> Text,
        user_id -> Text,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sealed_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        id -> Text,
        occurred_at -> Timestamp,
        org_id -> Nullable<Text>,
        actor -> Nullable<Text>,
        subject -> Nullable<Text>,
        event_type -> Text,
        outcome -> Text,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
        details -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    audit_checkpoints (last_seq) {
        last_seq -> BigInt,
        last_hash -> Text,
        cutoff -> Timestamp,
        pruned_events -> BigInt,
        created_at -> Timestamp,
        signature -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(audit_events, audit_head);

diesel::table! {
    outbox (id) {
        id -> Text,
        kind -> Text,
        /// `MasterKey::seal("outbox-recipient:<id>", …)`; '' in a row an earlier
        /// release queued, whose clear recipient waits in `legacy_recipient`.
        recipient_sealed -> Text,
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
        /// NULL once sealed (`store::pii::seal_legacy` empties it at start-up).
        legacy_recipient -> Nullable<Text>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        state -> Text,
        private_sealed -> Text,
        public_jwk -> Text,
        created_at -> Timestamp,
        activated_at -> Nullable<Timestamp>,
        retired_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    oidc_clients (client_id) {
        client_id -> Text,
        name -> Text,
        secret_hash -> Nullable<Text>,
        redirect_uris -> Text,
        post_logout_redirect_uris -> Text,
        grant_types -> Text,
        scopes -> Text,
        token_endpoint_auth_method -> Text,
        jwks -> Nullable<Text>,
        backchannel_logout_uri -> Nullable<Text>,
        id_token_alg -> Text,
        created_at -> Timestamp,
        allowed_orgs -> Nullable<Text>,
        introspection -> Bool,
        allowed_origins -> Nullable<Text>,
        require_par -> Bool,
        require_dpop -> Bool,
        fapi2 -> Bool,
        ask_consent -> Bool,
        jwks_uri -> Nullable<Text>,
        access_token_alg -> Text,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        asked -> Text,
        granted -> Text,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(consents -> oidc_clients (client_id));
diesel::allow_tables_to_appear_in_same_query!(consents, oidc_clients);

diesel::table! {
    oidc_grants (id) {
        id -> Text,
        client_id -> Text,
        user_id -> Nullable<Text>,
        session_handle -> Nullable<Text>,
        scope -> Text,
        auth_time -> Nullable<BigInt>,
        amr -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        dpop_jkt -> Nullable<Text>,
        emergency_id -> Nullable<Text>,
        audience -> Nullable<Text>,
        launch_context -> Nullable<Text>,
        fhir_user -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        grant_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    recovery_tokens (id) {
        id -> Text,
        user_id -> Text,
        purpose -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    revoked_access_tokens (jti) {
        jti -> Text,
        client_id -> Text,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(refresh_tokens -> oidc_grants (grant_id));
diesel::allow_tables_to_appear_in_same_query!(revoked_access_tokens, oidc_clients);
diesel::joinable!(oidc_grants -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(refresh_tokens, oidc_grants, users);
diesel::joinable!(recovery_tokens -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(recovery_tokens, users);

diesel::table! {
    saml_keys (id) {
        id -> Text,
        state -> Text,
        private_sealed -> Text,
        certificate -> Text,
        created_at -> Timestamp,
        activated_at -> Nullable<Timestamp>,
        retired_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    saml_service_providers (entity_id) {
        entity_id -> Text,
        name -> Text,
        acs_endpoints -> Text,
        slo_endpoints -> Text,
        signing_certs -> Text,
        encryption_certs -> Text,
        name_id_format -> Text,
        name_id_source -> Text,
        attribute_map -> Text,
        sign_assertion -> Bool,
        sign_response -> Bool,
        require_signed_requests -> Bool,
        encrypt_assertions -> Bool,
        metadata -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        idp_initiated -> Bool,
        idp_initiated_relay_states -> Text,
    }
}

diesel::table! {
    saml_sp_metadata_sources (entity_id) {
        entity_id -> Text,
        url -> Text,
        pinned_cert -> Nullable<Text>,
        refreshed_at -> Timestamp,
        next_refresh_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    saml_soap_participants (session_handle, sp_entity_id) {
        session_handle -> Text,
        sp_entity_id -> Text,
        subject_sealed -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    ip_allow_list (cidr) {
        cidr -> Text,
        note -> Text,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    emergency_designations (user_id) {
        user_id -> Text,
        org_id -> Text,
        granted_by -> Text,
        granted_at -> Timestamp,
    }
}

diesel::table! {
    emergency_sessions (id) {
        id -> Text,
        org_id -> Text,
        user_id -> Text,
        username -> Text,
        session_handle -> Text,
        reason -> Text,
        context -> Nullable<Text>,
        requested_by -> Nullable<Text>,
        started_at -> Timestamp,
        expires_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        end_reason -> Nullable<Text>,
        reviewed_by -> Nullable<Text>,
        reviewed_at -> Nullable<Timestamp>,
        review_note -> Nullable<Text>,
        overdue_notified_at -> Nullable<Timestamp>,
    }
}
diesel::allow_tables_to_appear_in_same_query!(emergency_designations, users);

diesel::table! {
    master_key_rotation (id) {
        id -> Integer,
        old_kid -> Text,
        new_kid -> Text,
        new_key_sealed -> Text,
        old_key_sealed -> Text,
        state -> Text,
        started_at -> Timestamp,
        holder -> Text,
        lease_until -> Timestamp,
        resealed -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    upstream_connectors (id) {
        id -> Text,
        org_id -> Text,
        slug -> Text,
        display_name -> Text,
        protocol -> Text,
        enabled -> Bool,
        settings -> Text,
        secret_sealed -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    upstream_domains (domain) {
        domain -> Text,
        connector_id -> Text,
    }
}

diesel::table! {
    upstream_links (connector_id, subject) {
        connector_id -> Text,
        subject -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}
diesel::allow_tables_to_appear_in_same_query!(upstream_connectors, upstream_domains);
diesel::allow_tables_to_appear_in_same_query!(upstream_links, users);

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Text,
        name -> Text,
        credential -> Text,
        aaguid -> Nullable<Text>,
        backup_eligible -> Bool,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}
diesel::allow_tables_to_appear_in_same_query!(passkeys, users);

diesel::table! {
    fhir_servers (id) {
        id -> Text,
        base_url -> Text,
        display_name -> Text,
        allowed_scopes -> Text,
        allowed_clients -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    fhir_users (user_id, fhir_server_id) {
        user_id -> Text,
        fhir_server_id -> Text,
        reference -> Text,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(fhir_users -> fhir_servers (fhir_server_id));
diesel::allow_tables_to_appear_in_same_query!(fhir_users, fhir_servers);

diesel::table! {
    user_preferences (user_id) {
        user_id -> Text,
        language -> Nullable<Text>,
        time_zone -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    org_branding (org_id) {
        org_id -> Text,
        document -> Text,
        logo -> Nullable<Binary>,
        logo_type -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}
