-- Type pairs PostgreSQL converts without an explicit cast (implicit or assignment context), which
-- is what INSERT ... SELECT applies. String targets also accept any type by I/O conversion.
SELECT castsource::bigint, casttarget::bigint FROM pg_cast WHERE castcontext IN ('a', 'i')
