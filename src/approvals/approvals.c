/* approvals.c — being written (issue 7); see tg_approvals.h. */
#include "approvals/tg_approvals.h"
