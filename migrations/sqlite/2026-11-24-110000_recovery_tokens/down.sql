DROP INDEX users_email_lower;
DROP TABLE recovery_tokens;
