-- Issue 27: `gatehouse keys rotate-master` (DESIGN §12). At most one rotation at a
-- time: the row's key is fixed. Running instances poll it to learn the new key
-- (`announced`: open with it; `resealing`: also seal with it); the command re-seals
-- every sealed column, then deletes the row.
--
-- The new key is sealed under the old one and the old under the new, so an instance
-- (or a resumed rotation) holding either key file learns the other. Both disappear
-- with the row.
CREATE TABLE master_key_rotation (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    old_kid TEXT NOT NULL,
    new_kid TEXT NOT NULL,
    new_key_sealed TEXT NOT NULL,
    old_key_sealed TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('announced', 'resealing', 'finished')),
    started_at TIMESTAMP NOT NULL,
    holder TEXT NOT NULL,
    lease_until TIMESTAMP NOT NULL,
    resealed BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMP NOT NULL
);
