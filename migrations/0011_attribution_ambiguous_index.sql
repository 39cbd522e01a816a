-- The attribution engine looks up the ambiguous evidence that lists a transaction among
-- its candidates whenever that transaction changes (its invoice may have been
-- corrected, leaving the ambiguity). Ambiguous evidence is rare: an index of it by
-- account keeps that lookup from reading every match.
CREATE INDEX attribution_matches_ambiguous ON attribution_matches (account_id)
    WHERE state = 'ambiguous';
