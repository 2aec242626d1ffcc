-- The approvals that cover a scope, newest first: approved under the fingerprint of the scope or of
-- a wider scope that contains it, not revoked, and with no rejection of any of those scopes after
-- them (a rejection vetoes its scope until someone approves it again; for the whole plan, a
-- rejection of any of its phases). `used_by`: the runs that already wrote under the approval for
-- this scope. `interrupted_by`: a run that wrote to the same scope after %(run_id)s claimed the
-- approval (a revert, another apply): a once-only approval covers one uninterrupted run.
SELECT a.approval_id, a.approver, a.approved_via, a.approved_at, a.scope, a.standing, a.for_run, a.details,
       ARRAY(SELECT u.run_id FROM ple_ops.approval_use u
             WHERE u.approval_id = a.approval_id AND (u.scope = %(scope)s OR %(scope)s = 'plan')
             ORDER BY u.first_used_at) AS used_by,
       (SELECT o.run_id FROM ple_ops.approval_use mine
          JOIN ple_ops.approval_use o ON o.scope = mine.scope AND o.run_id <> mine.run_id
                                     AND o.first_used_at > mine.first_used_at
        WHERE mine.approval_id = a.approval_id AND mine.run_id = %(run_id)s
          AND (mine.scope = %(scope)s OR %(scope)s = 'plan')
        ORDER BY o.first_used_at LIMIT 1) AS interrupted_by
FROM ple_ops.approval a
JOIN unnest(%(scopes)s::text[], %(fingerprints)s::text[]) AS c (scope, fingerprint)
  ON c.scope = a.scope AND c.fingerprint = a.fingerprint
WHERE a.subject = %(subject)s
  AND a.verdict = 'approve'
  AND a.revoked_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM ple_ops.approval r
      WHERE r.subject = a.subject AND r.verdict = 'reject' AND r.revoked_at IS NULL
        AND (r.scope = ANY (%(scopes)s::text[]) OR (%(scope)s = 'plan' AND r.scope LIKE 'phase %%'))
        AND r.approval_id > a.approval_id)
ORDER BY a.approval_id DESC
