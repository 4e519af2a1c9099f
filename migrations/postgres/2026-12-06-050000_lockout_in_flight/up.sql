-- Issue 23 item 2: an attempt being checked holds a lease on one of the remaining
-- tries instead of counting as a failure before its verdict. A lease whose verdict
-- never came (the database went away mid-check, an instance died) lapses at
-- `in_flight_until`; only a verdict adds to `failures`, in the same transaction as the
-- lock, its audit event and its notices.
ALTER TABLE lockouts ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
ALTER TABLE lockouts ADD COLUMN in_flight_until TIMESTAMP;
