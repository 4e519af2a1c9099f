DROP TABLE master_key_rotation;
