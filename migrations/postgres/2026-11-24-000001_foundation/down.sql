DROP TABLE password_history;
DROP TABLE users;
DROP TABLE organisations;
