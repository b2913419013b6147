-- A tenant's model equivalence list for GetRecommendations: named groups of models ("provider/model")
-- the tenant considers interchangeable. When a request names no candidate_models, a used model that
-- belongs to a group is priced on the group's other members, whatever their provider (the only way
-- besides candidate_models to get cross-provider candidates); models in no group keep the same-
-- provider default. Bounds (domain/equivalences.py): 1-64 character names of [A-Za-z0-9._:-], 2-32
-- distinct members of 3-257 characters, at most 100 groups per tenant (counted under an advisory
-- lock on 'meter_equivalences/<tenant>'). See docs/recommendations.md, "Equivalence list".

CREATE TABLE model_equivalences (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    models      text[] NOT NULL CHECK (cardinality(models) BETWEEN 2 AND 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);
