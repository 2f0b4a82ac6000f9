-- SECURITY.md rule 20: a customer is linked to at most one subject of an issuer. Two first
-- sign-ins of different subjects with the same email could both link the customer before
-- this index existed; the earliest link (then the smallest subject) is kept, as the
-- gateway itself decided at sign-in, and the later ones go: their next sign-in is refused
-- with customer_already_linked until an admin removes the kept link.
DELETE FROM identity_links WHERE EXISTS (
    SELECT 1 FROM identity_links AS e
    WHERE e.store_hash = identity_links.store_hash
      AND e.issuer = identity_links.issuer
      AND e.customer_id = identity_links.customer_id
      AND (e.created_at < identity_links.created_at
           OR (e.created_at = identity_links.created_at AND e.subject < identity_links.subject))
);
CREATE UNIQUE INDEX identity_links_one_per_issuer ON identity_links (store_hash, issuer, customer_id);
