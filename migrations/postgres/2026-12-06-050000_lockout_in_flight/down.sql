ALTER TABLE lockouts DROP COLUMN in_flight_until;
ALTER TABLE lockouts DROP COLUMN in_flight;
