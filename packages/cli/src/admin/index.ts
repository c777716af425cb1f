// The admin dashboard's server side: login, session cookies, the live stats feed and the actions.
export { AdminDashboard, DEFAULTS as ADMIN_DEFAULTS, type AdminDashboardOptions } from './dashboard.js'
export { adminRoutes, DEFAULT_ADMIN_DIR, type AdminRoutesOptions } from './routes.js'
export { ADMIN_NAMESPACE, CSRF_HEADER, CSRF_VALUE, type NodeStats, type NodesResponse, type TokenResponse } from './feed.js'
export { SESSION_COOKIE } from './session-cookie.js'
