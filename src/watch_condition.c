/*
 * watch_condition.c
 *		A watch's condition: one boolean expression over NEW and OLD, parsed
 *		by PostgreSQL's own parser as a trigger's WHEN clause is, kept parsed
 *		(pg_node_tree) and shown again as SQL with today's names.
 */
#include "postgres.h"
#include "catalog/heap.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/ruleutils.h"

#include "compat.h"
#include "watch.h"

#define CONDITION_HINT "Give one boolean SQL expression over the columns of NEW and OLD, such as NEW.status <> OLD.status."

/*
 * The parse state of a condition: OLD then NEW, both the watched table, as
 * PostgreSQL sets up a trigger's WHEN clause.  Its range table also serves
 * to record the condition's dependencies and to deparse it.
 */
static ParseState *
condition_parse_state(Relation rel, const char *text)
{
	ParseState *pstate = make_parsestate(NULL);
	const char *aliases[2] = {"old", "new"};

	pstate->p_sourcetext = text;

	for (int i = 0; i < 2; i++)
	{
		ParseNamespaceItem *nsitem;

		nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock,
											   makeAlias(aliases[i], NIL), false, false);
		addNSItemToQuery(pstate, nsitem, false, true, true);
	}
	return pstate;
}

/* Point parse errors into the condition, not into the statement calling watch(). */
static void
condition_error_callback(void *arg)
{
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery((const char *) arg);
	}
	errcontext("watch condition");
}

/* What system_column_walker needs: the parse state, for the error's position. */
typedef struct SystemColumnContext
{
	ParseState *pstate;
	int			sublevels_up;
} SystemColumnContext;

/*
 * Refuse NEW.xmin, OLD.ctid and the like, also inside subqueries: the rows
 * a watch reads come from transition tables, which have no system columns,
 * so such a condition would fail every write to the table.  A subquery's
 * own tables keep theirs.
 */
static bool
system_column_walker(Node *node, SystemColumnContext *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varlevelsup == context->sublevels_up && var->varattno < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
					 errmsg("watch condition cannot use system column \"%s\"",
							NameStr(SystemAttributeDefinition(var->varattno)->attname)),
					 errdetail("NEW and OLD are the rows a statement changed, without system columns."),
					 errhint(CONDITION_HINT),
					 parser_errposition(context->pstate, var->location)));
		return false;
	}
	if (IsA(node, Query))
	{
		bool		found;

		context->sublevels_up++;
		found = query_tree_walker((Query *) node, system_column_walker, context, 0);
		context->sublevels_up--;
		return found;
	}
	return expression_tree_walker(node, system_column_walker, context);
}

/*
 * The one expression a condition's text holds, as PostgreSQL's parser reads
 * it (names not yet bound); an error when the text holds anything else.
 * Also the rule of src/compat.c's webhook._expression_problem().
 */
Node *
webhook_condition_expression(const char *text)
{
	SelectStmt *sel;
	ResTarget  *target = NULL;

	sel = castNode(SelectStmt,
				   linitial_node(RawStmt, raw_parser(text, RAW_PARSE_PLPGSQL_EXPR))->stmt);
	if (list_length(sel->targetList) == 1)
		target = linitial_node(ResTarget, sel->targetList);
	if (target == NULL || target->name != NULL ||
		sel->distinctClause || sel->fromClause || sel->whereClause ||
		sel->groupClause || sel->havingClause || sel->windowClause ||
		sel->sortClause || sel->limitOffset || sel->limitCount || sel->lockingClause)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("watch condition must be a single expression"),
				 errdetail("The condition was: %s", text),
				 errhint(CONDITION_HINT)));
	return target->val;
}

/*
 * A condition as PostgreSQL's own parser reads it: exactly one boolean
 * expression over NEW and OLD, names bound now (so renames do not matter).
 * Nothing of the text is ever pasted into a query.
 */
Node *
watch_parse_condition(Relation rel, const char *text, List **rtable)
{
	ErrorContextCallback errcallback;
	Node	   *raw;
	ParseState *pstate;
	Node	   *expr;

	errcallback.callback = condition_error_callback;
	errcallback.arg = (void *) text;

	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	raw = webhook_condition_expression(text);
	pstate = condition_parse_state(rel, text);
	expr = transformExpr(pstate, raw, EXPR_KIND_WHERE);
	if (exprType(expr) != BOOLOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("watch condition must be of type boolean, not type %s",
						format_type_be(exprType(expr))),
				 errdetail("The condition was: %s", text),
				 errhint(CONDITION_HINT)));
	assign_expr_collations(pstate, expr);
	{
		SystemColumnContext context = {pstate, 0};

		(void) system_column_walker(expr, &context);
	}

	error_context_stack = errcallback.previous;
	*rtable = pstate->p_rtable;
	return expr;
}

/* A stored condition as SQL, with the names its columns and functions have now. */
char *
watch_deparse_condition(Relation rel, const char *stored)
{
	PlannedStmt *pstmt = makeNode(PlannedStmt);

	pstmt->rtable = condition_parse_state(rel, NULL)->p_rtable;
	return deparse_expression(stringToNode(stored),
							  deparse_context_for_plan_tree(pstmt, list_make2("old", "new")),
							  true, false);
}
