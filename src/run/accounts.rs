//! Fresh, unique accounts for every case (in-band registration or the server's command).
