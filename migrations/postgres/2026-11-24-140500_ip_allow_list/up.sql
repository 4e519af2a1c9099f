-- Client addresses never counted or blocked by the brute-force guard (DESIGN §5: a
-- hospital's NAT), managed over the admin API and shared by every instance. The
-- `ip_allow_list` setting still adds networks of its own; the guard consults both.
CREATE TABLE ip_allow_list (
    cidr       TEXT PRIMARY KEY,
    note       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
