-- Issue 31: a person's own language and time zone for pages and mails. A row exists
-- once they chose either; NULL is "as the browser and the organisation say".
CREATE TABLE user_preferences (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    language TEXT,
    time_zone TEXT,
    updated_at TIMESTAMP NOT NULL
);
