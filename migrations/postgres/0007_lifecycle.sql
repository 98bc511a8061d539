-- Identity lifecycle: the HR correlation key. Identical in both dialects.
-- Several identities may have none (NULLs are distinct in a unique index on both backends).
ALTER TABLE identities ADD COLUMN employee_number TEXT;
CREATE UNIQUE INDEX identities_by_employee_number ON identities (employee_number);
