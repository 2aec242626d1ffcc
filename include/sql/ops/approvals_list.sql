-- Every approval and rejection, newest first, with the runs that wrote under each (console, CLI).
SELECT a.approval_id, a.subject, a.scope, a.verdict, a.approver, a.approved_via, a.approved_at,
       a.standing, a.for_run, a.fingerprint, a.note, a.revoked_at, a.revoked_by, a.revoke_reason,
       COALESCE((SELECT jsonb_agg(jsonb_build_object('scope', u.scope, 'run_id', u.run_id,
                                                     'first_used_at', u.first_used_at)
                                  ORDER BY u.first_used_at)
                 FROM ple_ops.approval_use u WHERE u.approval_id = a.approval_id), '[]') AS used
FROM ple_ops.approval a
ORDER BY a.approval_id DESC
LIMIT %(limit)s
