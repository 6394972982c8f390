-- What the webhook extension made in this database, one fact per row,
-- without object ids: test/t/025_upgrade.pl compares an updated database
-- with a fresh install by this output.  Members and what hangs off them
-- (columns, constraints, indexes, triggers, policies, defaults, rules,
-- row types), the transform wrappers, their definitions, owners,
-- privileges, comments and dependencies; the extension's dump
-- configuration; and the watches (their triggers on application tables
-- included).
WITH ext AS (
    SELECT * FROM pg_extension WHERE extname = 'webhook'
), members AS (
    SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), attached AS (
    -- what the extension made at run time and takes along on DROP EXTENSION:
    -- the transform wrappers
    SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'a'
), member_rels AS (
    SELECT m.objid AS relid FROM members m WHERE m.classid = 'pg_class'::regclass
), watch_triggers AS (
    SELECT t.oid, t.tgrelid FROM pg_trigger t
     WHERE t.tgfoid = 'webhook._watch_trigger()'::regprocedure
), owned AS (
    SELECT classid, objid, objsubid FROM members
    UNION
    SELECT classid, objid, objsubid FROM attached
    UNION
    SELECT d.classid, d.objid, d.objsubid FROM pg_depend d JOIN member_rels r ON d.refobjid = r.relid
     WHERE d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i', 'n')
       AND d.classid IN ('pg_trigger'::regclass, 'pg_constraint'::regclass, 'pg_attrdef'::regclass,
                         'pg_policy'::regclass, 'pg_rewrite'::regclass, 'pg_class'::regclass, 'pg_type'::regclass)
    UNION
    SELECT 'pg_trigger'::regclass, w.oid, 0 FROM watch_triggers w
), facts AS (
    -- membership
    SELECT 'member: ' || pg_describe_object(classid, objid, objsubid) AS line FROM members
    UNION ALL
    SELECT 'attached: ' || pg_describe_object(classid, objid, objsubid) FROM attached
    -- dependencies of everything the extension owns (but membership)
    UNION ALL
    SELECT format('depend: %s -> %s (%s)', pg_describe_object(d.classid, d.objid, d.objsubid),
                  pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), d.deptype)
      FROM pg_depend d JOIN owned o USING (classid, objid)
     WHERE d.deptype <> 'e'
    -- functions: definition, owner, privileges
    UNION ALL
    SELECT format(E'function: %s owner %s acl %s\n%s', p.oid::regprocedure, p.proowner::regrole,
                  p.proacl, pg_get_functiondef(p.oid))
      FROM pg_proc p JOIN owned o ON o.classid = 'pg_proc'::regclass AND o.objid = p.oid
    -- relations: kind, options, owner, privileges, row level security
    UNION ALL
    SELECT format('relation: %s kind %s persistence %s owner %s options %s acl %s rls %s/%s replident %s',
                  c.oid::regclass, c.relkind, c.relpersistence, c.relowner::regrole, c.reloptions,
                  c.relacl, c.relrowsecurity, c.relforcerowsecurity, c.relreplident)
      FROM pg_class c JOIN member_rels r ON r.relid = c.oid
    -- columns, in order (numbers may differ after ALTER TABLE)
    UNION ALL
    SELECT format('column: %s #%s %s %s notnull %s default %s identity %s generated %s collation %s acl %s options %s',
                  a.attrelid::regclass, row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                  a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
                  CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation END, a.attacl,
                  -- (some builds keep a per-column version stamp here)
                  ARRAY(SELECT o FROM unnest(a.attoptions) AS o WHERE o NOT LIKE 'pg\_attver=%'))
      FROM pg_attribute a JOIN member_rels r ON r.relid = a.attrelid
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT format('constraint: %s on %s: %s', co.conname, co.conrelid::regclass, pg_get_constraintdef(co.oid))
      FROM pg_constraint co JOIN member_rels r ON r.relid = co.conrelid
    UNION ALL
    SELECT format('index: %s', pg_get_indexdef(i.indexrelid))
      FROM pg_index i JOIN member_rels r ON r.relid = i.indrelid
    UNION ALL
    SELECT format('trigger: %s enabled %s', pg_get_triggerdef(t.oid), t.tgenabled)
      FROM pg_trigger t
     WHERE t.tgrelid IN (SELECT relid FROM member_rels) AND NOT t.tgisinternal
        OR t.oid IN (SELECT oid FROM watch_triggers)
    UNION ALL
    SELECT format('policy: %s on %s cmd %s permissive %s roles %s using %s check %s', po.polname,
                  po.polrelid::regclass, po.polcmd, po.polpermissive, po.polroles::regrole[],
                  pg_get_expr(po.polqual, po.polrelid), pg_get_expr(po.polwithcheck, po.polrelid))
      FROM pg_policy po JOIN member_rels r ON r.relid = po.polrelid
    UNION ALL
    SELECT format('view: %s: %s', c.oid::regclass, pg_get_viewdef(c.oid))
      FROM pg_class c JOIN member_rels r ON r.relid = c.oid WHERE c.relkind = 'v'
    UNION ALL
    SELECT format('sequence: %s type %s start %s increment %s max %s min %s cache %s cycle %s',
                  s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax,
                  s.seqmin, s.seqcache, s.seqcycle)
      FROM pg_sequence s JOIN member_rels r ON r.relid = s.seqrelid
    UNION ALL
    SELECT format('event trigger: %s on %s function %s tags %s enabled %s owner %s', e.evtname, e.evtevent,
                  e.evtfoid::regprocedure, e.evttags, e.evtenabled, e.evtowner::regrole)
      FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
    -- comments on anything owned (columns too)
    UNION ALL
    SELECT format('comment: %s: %s', pg_describe_object(de.classoid, de.objoid, de.objsubid), de.description)
      FROM pg_description de
     WHERE (de.classoid, de.objoid) IN (SELECT classid, objid FROM owned)
    -- privileges as the extension set them (pg_dump's baseline)
    UNION ALL
    SELECT format('init privs: %s %s %s', pg_describe_object(ip.classoid, ip.objoid, ip.objsubid),
                  ip.privtype, ip.initprivs)
      FROM pg_init_privs ip
     WHERE (ip.classoid, ip.objoid) IN (SELECT classid, objid FROM owned)
    -- the extension itself: version, schema, dump configuration
    UNION ALL
    SELECT format('extension: version %s schema %s relocatable %s owner %s', extversion,
                  extnamespace::regnamespace, extrelocatable, extowner::regrole) FROM ext
    UNION ALL
    SELECT format('dump config: %s where %s', c.cfg::regclass, quote_nullable(c.cond))
      FROM ext, unnest(ext.extconfig, ext.extcondition) AS c(cfg, cond)
    -- the watches, as the watches view shows them
    UNION ALL
    SELECT format('watch: %s prefix %s operations %s columns %s condition %s exclude %s',
                  w."table", w.event_prefix, w.operations, w.columns, w.condition, w.exclude_columns)
      FROM webhook.watches w
)
-- (toast tables are named by number)
SELECT f.fact FROM facts, LATERAL (SELECT regexp_replace(line, 'pg_toast_[0-9]+', 'pg_toast_N', 'g') AS fact) f
 ORDER BY f.fact COLLATE "C";
