# La consola de administración (templates/admin/*.html, src/admin/console). Los nombres
# técnicos quedan como están: tipos de evento (user.created), nombres de campos de
# formularios y de JSON (password.min_length), valores de protocolo
# (client_secret_basic), URL y direcciones. Un $field es uno de esos nombres; un $detail
# o un $why son las palabras del servicio de administración, en inglés.

## Todas las páginas

console-title = Consola de administración
console-find-a-user = Buscar un usuario
console-your-organisation = Su organización
console-audit-trail = Registro de auditoría
console-emergency-reviews = Revisiones de acceso de emergencia
console-identity-providers = Proveedores de identidad
console-ip-blocks = Bloqueos de IP
console-fhir-servers = Servidores FHIR

## Rechazos

console-not-an-administrator = La consola de administración es para administradores, y su cuenta no lo es.
console-sign-in-again = Inicie sesión de nuevo.
console-mfa-required = Su organización exige un segundo factor para su rol: inicie sesión de nuevo.
console-refused-role = Su rol no permite hacer esto.
console-refused-peer = No puede actuar sobre un usuario cuyo rol es igual o superior al suyo.
console-refused-grant = No puede otorgar este rol.
console-refused-own-review = No puede aprobar su propio acceso de emergencia: debe hacerlo otro administrador.
console-refused-mapping-role = La asignación de cuentas otorga un rol que usted no puede otorgar.
console-refused-connector-linked = Hay una cuenta con un rol igual o superior al suyo vinculada a este proveedor de identidad: solo un superadministrador puede apuntarlo a otro.
console-refused-org-above = Un miembro de esta organización tiene un rol superior al suyo (superadministrador): solo un superadministrador puede cambiar sus políticas.
# Un rechazo para el que la consola no tiene palabras propias, en el inglés del servicio.
console-refused-other = Motivo: { $why }.
console-not-accepted = No se aceptó: { $detail }
console-search-too-long = { $max ->
    [one] Búsqueda: como máximo un carácter.
   *[other] Búsqueda: como máximo { $max } caracteres.
}
console-export-format-unknown = Elija exportar como CSV o como líneas JSON.
console-review-note-missing = Escriba una nota para aprobar la sesión.
console-review-note-invalid = { $max ->
    [one] Una nota de revisión tiene un carácter, en una sola línea, sin caracteres de control.
   *[other] Una nota de revisión tiene como máximo { $max } caracteres, en una sola línea, sin caracteres de control.
}
console-confirm-delete-first = Marque la casilla para confirmar la eliminación: no se eliminó nada.
console-not-a-username = Ese no es un nombre de usuario válido.

## Avisos después de una acción

console-notice-unlocked = Se desbloqueó el inicio de sesión.
console-notice-not-locked = El inicio de sesión no estaba bloqueado.
console-notice-reset = Se exige una contraseña nueva: la anterior ya no funciona; se envió al usuario un enlace para restablecerla y se cerraron todas sus sesiones.
console-notice-totp-removed = Se quitó la verificación en dos pasos; se avisó al usuario por correo.
console-notice-passkey-removed = Se quitó la llave de acceso; se avisó al usuario por correo.
console-notice-fhir-user-set = Se asignó el recurso FHIR del usuario.
console-notice-fhir-user-cleared = Se quitó el recurso FHIR del usuario.
console-notice-fhir-server-created = Se registró el servidor FHIR.
console-notice-fhir-server-deleted = Se eliminó el registro del servidor FHIR.
console-notice-no-totp = El usuario no tenía verificación en dos pasos.
console-notice-session-ended = Se cerró la sesión.
console-notice-sessions-ended = Se cerraron todas las sesiones del usuario.
console-notice-policy-saved = Se guardaron las políticas.
console-notice-branding-saved = Se guardó la identidad visual.
console-notice-logo-saved = Se guardó el logotipo.
console-notice-logo-removed = Se quitó el logotipo.
console-notice-ip-lifted = Se levantó el bloqueo.
console-notice-ip-not-blocked = Esa dirección no estaba bloqueada.
console-notice-reviewed = Se aprobó la sesión de emergencia.
console-notice-emergency-granted = El usuario ahora puede usar el acceso de emergencia.
console-notice-emergency-already = El usuario ya estaba designado para el acceso de emergencia.
console-notice-emergency-withdrawn = El usuario ya no puede usar el acceso de emergencia.
console-notice-emergency-not-designated = El usuario no estaba designado para el acceso de emergencia.
console-notice-connector-created = Se agregó el proveedor de identidad.
console-notice-connector-saved = Se guardó el proveedor de identidad.
console-notice-connector-deleted = Se eliminó el proveedor de identidad, con sus vínculos.
console-notice-linked = Se vinculó la identidad externa.
console-notice-unlinked = Se eliminó el vínculo.

## Buscar un usuario (home.html)

console-search-label = Nombre de usuario (o parte de él) o una dirección de correo completa
console-results = Resultados
console-no-user-matches = Ningún usuario coincide.
console-status = Estado
console-sign-in = Inicio de sesión
console-two-step = Dos pasos
console-locked = bloqueado
console-not-locked-short = abierto
console-mfa-on = activada
console-mfa-off = desactivada
console-search-truncated = { $count ->
    [one] Solo se muestra la primera coincidencia: precise la búsqueda.
   *[other] Solo se muestran las primeras { $count } coincidencias: precise la búsqueda.
}
console-organisations = Organizaciones
console-status-active = activo
console-status-disabled = deshabilitado
console-status-invited = invitado

## Un usuario (user.html)

console-user = Usuario
console-not-locked = no bloqueado
console-enrolled = configurada
console-not-enrolled = no configurada
console-must-change-password = Contraseña nueva obligatoria en el próximo inicio de sesión
console-yes = sí
console-no = no
console-designated-since = designado desde el { $since }
console-not-designated = no designado
console-withdraw-emergency = Retirar el acceso de emergencia
console-designate-emergency = Designar para el acceso de emergencia
console-user-audit-events = Eventos de auditoría de este usuario
console-user-actions = Acciones
console-unlock = Desbloquear el inicio de sesión
console-force-reset = Exigir una contraseña nueva
console-remove-totp = Quitar la verificación en dos pasos
console-user-passkeys = Llaves de acceso
console-no-passkey = Ninguna llave de acceso.
console-passkey-synced = sincronizada
console-passkey-one-device = en un dispositivo
console-remove-passkey = Quitar la llave de acceso { $name }
console-fhir-identities = Identidades FHIR
# Seguido del nombre del claim, fhirUser.
console-fhir-identities-intro = Quién es el usuario en cada servidor FHIR. Los tokens de sus aplicaciones SMART lo indican en el claim
console-none = Ninguna.
console-fhir-server = Servidor FHIR
console-resource = Recurso
console-remove-fhir-user = Quitar el recurso en { $server }
console-fhir-server-base-url = URL base del servidor FHIR
console-fhir-user-label = Recurso (Practitioner/…, Patient/…, RelatedPerson/…, Person/…)
console-set-fhir-user = Asignar el recurso FHIR
console-sessions = Sesiones
console-no-sessions = No tiene ninguna sesión iniciada.
console-signed-in-with = Con
console-with-passkey = llave de acceso
console-with-password-and-code = contraseña y código
console-with-password = contraseña
console-end-session = Cerrar esta sesión
console-end-all-sessions = Cerrar todas las sesiones

## El registro de auditoría (audit.html)

console-audit-filter-refused = No se pueden usar estos filtros:
console-audit-user = Usuario (nombre de usuario o id)
console-event-type = Tipo de evento
console-any = Cualquiera
console-outcome = Resultado
console-outcome-success = éxito
console-outcome-failure = fallo
console-audit-from = Desde (UTC, inclusive)
console-audit-to = Hasta (UTC, exclusive)
console-order = Orden
console-newest-first = Más recientes primero
console-oldest-first = Más antiguos primero
console-show = Mostrar
console-show-newest-first = Mostrar los más recientes primero
console-show-oldest-first = Mostrar los más antiguos primero
console-export-csv = Exportar como CSV
console-export-jsonl = Exportar como líneas JSON
console-no-events = No hay eventos.
console-time = Hora
console-type = Tipo
console-actor = Actor
console-subject = Sujeto
console-client-ip = IP del cliente
console-details = Detalles
console-newer-events = Eventos más recientes
console-older-events = Eventos más antiguos

## Las políticas de una organización (org.html)

console-policy-not-saved = No se guardaron las políticas. Corrija estos campos:
console-policy-read-only = Su rol puede leer estas políticas, pero no cambiarlas.
console-passwords = Contraseñas
console-min-length = Mínimo de caracteres (8 a 128)
console-max-length = Máximo de caracteres (hasta 1024)
console-require-upper = Una letra mayúscula
console-require-lower = Una letra minúscula
console-require-digit-or-symbol = Un dígito o un símbolo
console-min-strength = Puntaje mínimo de solidez (0 a 4; 0 desactiva la comprobación)
console-history = Contraseñas anteriores que no se pueden reutilizar (0 a 24)
console-max-age-days = Días tras los cuales se debe cambiar la contraseña (vacío: nunca)
console-lockout = Bloqueo de cuentas
console-lockout-threshold = Intentos fallidos que bloquean el inicio de sesión (0 desactiva el bloqueo)
console-lock-minutes = Minutos que dura un bloqueo
console-permanent-after = Bloqueos seguidos tras los cuales solo un administrador desbloquea (0: nunca)
console-reset-failures-after = Minutos tras los cuales se olvidan los intentos fallidos anteriores
console-mfa-and-sessions = Verificación en dos pasos y sesiones
console-mfa-who = Quién debe usar la verificación en dos pasos
console-mfa-nobody = Nadie
console-mfa-admins = Administradores y soporte
console-mfa-everyone = Todos
console-passkeys-off = Desactivadas
console-passkeys-allowed = Permitidas para todos
console-passkeys-required-admins = Obligatorias para administradores y soporte
console-passkeys-required-everyone = Obligatorias para todos
console-phishing-resistant-admins = El segundo paso de los administradores debe ser una llave de acceso (sin TOTP)
console-session-idle = Tiempo de inactividad de la sesión, en segundos (60 a 2592000)
console-session-absolute = Duración de la sesión, en segundos (al menos el tiempo de inactividad)
console-support-email = Contacto de soporte para las alertas de bloqueo, de bloqueo de IP y de acceso de emergencia (vacío: ninguno)
console-privacy-officer = Responsable de privacidad, avisado junto con el contacto de soporte cada vez que alguien usa el acceso de emergencia (vacío: ninguno)
console-emergency-window = Minutos que permanece abierto un acceso de emergencia (5 a 720; nunca se prolonga)
console-emergency-overdue = Horas tras las cuales una sesión de emergencia sin revisar está atrasada y se avisa por correo a diario (1 a 720)
console-save-policies = Guardar las políticas
console-field-whole-number = { $field }: debe ser un número entero
console-field-email = { $field }: debe ser una dirección de correo
console-field-mfa-choice = { $field }: debe ser off, admins o everyone
console-field-passkey-mode-choice = { $field }: debe ser off, allowed, required_for_admins o required_for_everyone

## Revisiones de acceso de emergencia (emergency.html)

console-emergency-intro = Cada vez que alguien usa el acceso de emergencia, un segundo administrador aprueba la sesión con una nota: qué se consultó y si estaba justificado. El usuario que usó el acceso de emergencia nunca revisa el suyo.
console-awaiting-review = Pendientes de revisión
console-no-open-reviews = Ninguna sesión de emergencia está pendiente de revisión.
console-reason = Motivo
console-started = Inicio
console-ends = Fin
console-asked-for-by = Solicitado por
console-sign-off-heading = Aprobación
console-own-review = Es suya: la aprueba otro administrador.
console-note = Nota
console-sign-off = Aprobar
console-recently-signed-off = Aprobadas recientemente
console-none-yet = Ninguna todavía.
console-signed-off = Aprobada
console-by = Por
console-window-expired = terminó el { $at } (se acabó el tiempo)
console-window-ended-by-user = terminó el { $at }, por el usuario
console-window-signed-out = terminó el { $at } (cierre de sesión)
console-window-ended = terminó el { $at }
console-window-open-until = abierta hasta el { $at }
console-window-lapsed = venció el { $at }
console-requested-on-account-page = la página de la cuenta

## Bloqueos de IP (ip_blocks.html)

console-blocked-addresses = Direcciones bloqueadas
console-no-blocks = No hay ninguna dirección bloqueada.
console-address = Dirección
console-blocked-until = Bloqueada hasta
console-times-blocked = Veces bloqueada
console-why = Motivo
console-lift = Levantar

## Servidores FHIR (fhir_servers.html)

# Seguido del nombre del parámetro, aud.
console-fhir-servers-intro = Servidores FHIR que aceptan los tokens de Gatehouse (servidores de recursos SMART on FHIR). Su URL base es la audiencia de los tokens, que los clientes indican como
console-no-fhir-servers = No hay ningún servidor FHIR registrado.
console-base-url = URL base
console-scopes = Ámbitos
console-clients = Clientes
console-remove-fhir-server = Quitar { $name }
console-register-fhir-server = Registrar un servidor FHIR
console-fhir-scopes-label = Ámbitos clínicos que acepta, separados por espacios (por ejemplo patient/*.rs user/Observation.rs)
console-fhir-clients-label = ID de los clientes que pueden pedir tokens para él, separados por espacios
console-register = Registrar

## Proveedores de identidad (connectors.html, connector.html, connector_form.html)

console-identity-providers-intro = Las personas de una organización pueden iniciar sesión con el proveedor de identidad de su organización. Cada uno se registra allí como cliente, con la URL de retorno que se muestra en su página.
console-no-connectors = Todavía no hay ningún proveedor de identidad.
console-in-urls = En las URL
console-protocol = Protocolo
console-state = Estado
console-email-domains = Dominios de correo
console-enabled = habilitado
console-disabled = deshabilitado
console-add-identity-provider-heading = Agregar un proveedor de identidad
console-identity-provider = Proveedor de identidad
console-sp-metadata-url = URL de metadatos del SP (nuestro ID de entidad) que se registra en el proveedor de identidad
console-callback-url = URL de retorno que se registra en el proveedor de identidad
console-client-secret = Secreto de cliente
console-secret-set = configurado
console-secret-none = ninguno
console-all-identity-providers = Todos los proveedores de identidad
console-linked-accounts = Cuentas vinculadas
console-no-links = Ninguna identidad externa está vinculada a una cuenta.
console-upstream-identity = Identidad externa
console-account = Cuenta
console-linked = Vinculada
console-remove-link = Quitar el vínculo
console-link-heading = Vincular una identidad externa
console-link-intro = Quien inicie sesión en el proveedor de identidad con esta identidad iniciará sesión aquí con la cuenta. Las cuentas son de la organización del proveedor de identidad.
console-link-subject = Identidad externa (el claim sub)
console-link = Vincular
console-delete-heading = Eliminar
console-confirm-delete = Eliminar este proveedor de identidad y todos sus vínculos; las cuentas se conservan
console-delete = Eliminar
console-connector-not-added = No se agregó el proveedor de identidad. Corrija estos campos:
console-connector-not-saved = No se guardó el proveedor de identidad. Corrija estos campos:
console-display-name = Nombre en el botón de inicio de sesión
console-slug = Nombre en las URL (de 1 a 40 caracteres entre a-z, 0-9 y -)
console-enabled-label = Habilitado
console-domains = Dominios de correo cuyos usuarios se envían aquí, uno por línea
console-protocol-oidc = OpenID Connect (complete la sección OpenID Connect)
console-protocol-saml = SAML 2.0 (complete la sección SAML)
console-issuer = Emisor (https)
console-client-id = ID de cliente en el proveedor de identidad
console-client-secret-keep = Secreto de cliente (hay uno configurado: deje el campo vacío para conservarlo)
console-remove-secret = Quitar el secreto guardado
console-client-auth = Autenticación del cliente
console-client-auth-basic = Secreto, HTTP Basic (client_secret_basic)
console-client-auth-post = Secreto en el cuerpo (client_secret_post)
console-client-auth-private-key-jwt = Clave de firma de Gatehouse (private_key_jwt)
console-upstream-scopes = Ámbitos además de openid, separados por espacios
console-ca-pem = Autoridad de certificación de confianza para él, en PEM (vacío: la del sistema)
console-metadata-url = URL de metadatos del proveedor de identidad (https)
console-metadata-xml = O su documento de metadatos, pegado
console-entity-id = Su ID de entidad, si los metadatos describen varios (vacío: el único)
console-require-encrypted = Rechazar las aserciones que no estén cifradas
console-accounts = Cuentas
console-just-in-time = Crear las cuentas en el primer inicio de sesión (justo a tiempo)
console-trust-upstream-mfa = El segundo factor del proveedor de identidad cuenta como el nuestro
console-mfa-acr-values = Valores de acr que indican que se usó un segundo factor, separados por espacios
console-show-on-login = Ofrecerlo como botón en la página de inicio de sesión
console-username-claim = Claim con el nombre de usuario
console-email-claim = Claim con la dirección de correo
console-name-claim = Claim con el nombre para mostrar
console-groups-claim = Claim con la lista de grupos (vacío: ninguno)
console-role-map = Grupos que otorgan un rol, un grupo=rol por línea (user, support, org_admin, super_admin)
console-fhir-user-claim = Claim con el recurso FHIR de la persona, como Practitioner/123 (fhirUser de SMART; vacío: ninguno)
console-fhir-user-server = El servidor FHIR registrado en el que está (su URL base)
console-default-role = Rol de las demás cuentas creadas justo a tiempo
console-add-identity-provider = Agregar el proveedor de identidad
console-field-url = { $field }: debe ser una URL
console-field-method-choice = { $field }: elija uno de los métodos ofrecidos
console-field-role-choice = { $field }: elija uno de los roles ofrecidos
console-field-role-map-line = { $field }: { $line } no tiene la forma grupo=rol (user, support, org_admin, super_admin)
console-default-language = Idioma predeterminado (cuando ni la persona ni su navegador eligieron uno que Gatehouse hable)
console-default-language-none = Ninguno: inglés
console-default-time-zone = Zona horaria predeterminada para las fechas

## The overview at /admin (home.html): its dashboard

console-overview = Resumen
console-dash-heading = De un vistazo
console-dash-sign-ins = Inicios de sesión correctos, últimas 24 horas
console-dash-failures = Inicios de sesión fallidos, últimas 24 horas
console-dash-locked = Cuentas bloqueadas ahora
console-dash-emergency = Sesiones de emergencia pendientes de revisión
console-dash-ip-blocks = Direcciones IP bloqueadas ahora
console-dash-outbox = Bandeja de salida: en espera de envío
console-dash-outbox-failed = Bandeja de salida: no se pudo enviar
console-users-found = { $count ->
    [one] Coincide un usuario.
   *[other] Coinciden { $count } usuarios.
}
console-users-found-more = Coinciden más de { $count } usuarios: las páginas terminan ahí; una búsqueda más precisa encuentra a los demás.

## Sortable, paged tables (headings.html, pager.html)

console-sort-ascending = (ordenar de forma ascendente)
console-sort-descending = (ordenar de forma descendente)
console-pages = Páginas
console-previous-page = Página anterior
console-next-page = Página siguiente
console-page-of = Página { $page } de { $pages }

## Confirming a destructive action (confirm.html)

console-confirm = Confirmar
console-cancel = Cancelar
console-confirm-end-all-title = ¿Cerrar todas las sesiones de { $user }?
console-confirm-end-all-what = Se cerrará la sesión de { $user } en todos los navegadores, y las aplicaciones en las que inició sesión perderán sus tokens. Podrá volver a iniciar sesión.
console-confirm-end-session-title = ¿Cerrar esta sesión de { $user }?
console-confirm-end-session-what = Se cerrará la sesión iniciada el { $started } desde { $from }: ese navegador quedará sin sesión, y las aplicaciones en las que inició sesión perderán sus tokens. Las demás sesiones de { $user } continúan.
console-unknown-place = un lugar desconocido
console-confirm-force-reset-title = ¿Exigir una contraseña nueva a { $user }?
console-confirm-force-reset-what = La contraseña de { $user } dejará de funcionar de inmediato: se cerrarán todas sus sesiones y recibirá por correo un enlace para elegir una nueva.
console-confirm-remove-totp-title = ¿Quitar la verificación en dos pasos de { $user }?
console-confirm-remove-totp-what = Los códigos de la aplicación de autenticación de { $user } dejarán de funcionar. Si su organización exige la verificación en dos pasos, deberá configurarla de nuevo en su próximo inicio de sesión. Se le avisará por correo.
console-confirm-remove-passkey-title = ¿Quitar la llave de acceso { $name } de { $user }?
console-confirm-remove-passkey-what = { $user } ya no podrá iniciar sesión con esta llave de acceso; sus otras formas de entrar se conservan. Se le avisará por correo.
console-confirm-clear-fhir-user-title = ¿Quitar el recurso FHIR de { $user } en { $server }?
console-confirm-clear-fhir-user-what = Los tokens que las aplicaciones SMART de { $user } obtengan para { $server } ya no dirán que es { $resource }.
console-confirm-emergency-withdraw-title = ¿Retirar el acceso de emergencia de { $user }?
console-confirm-emergency-withdraw-what = { $user } ya no podrá usar el acceso de emergencia. Un acceso de emergencia ya abierto sigue su curso y queda pendiente de revisión.
console-confirm-delete-connector-title = ¿Eliminar el proveedor de identidad { $name }?
console-confirm-delete-connector-what = Nadie podrá volver a iniciar sesión con { $name }, y se quitarán todos los vínculos de sus identidades con cuentas. Las cuentas se conservan, con cualquier otra forma de entrar que tengan.
console-confirm-remove-link-title = ¿Quitar el vínculo de { $subject }?
console-confirm-remove-link-what = Quien inicie sesión en { $provider } como { $subject } ya no entrará aquí como { $user }. La cuenta se conserva.
console-confirm-delete-fhir-server-title = ¿Quitar el servidor FHIR { $name }?
console-confirm-delete-fhir-server-what = Gatehouse dejará de emitir tokens para { $url }, y se olvidará el recurso FHIR que cada usuario tenía en él.
console-confirm-remove-logo-title = ¿Quitar el logotipo de { $name }?
console-confirm-remove-logo-what = Sus páginas de inicio de sesión mostrarán su nombre sin logotipo hasta que se suba otro.
console-confirm-lift-title = ¿Levantar el bloqueo de { $ip }?
console-confirm-lift-what = Se volverán a aceptar de inmediato los inicios de sesión desde { $ip } (estaba bloqueada hasta el { $until }). Si siguen los fallos desde ella, se bloqueará de nuevo, por más tiempo.

## An organisation's branding (branding.html)

console-branding-link = Identidad visual: nombre, colores, logotipo y datos de soporte
console-branding = Identidad visual de { $name }
console-back-to-policies = Volver a las políticas de la organización
console-branding-read-only = Su rol puede leer esta identidad visual, pero no cambiarla.
console-branding-not-saved = No se guardó la identidad visual. Corrija estos campos:
console-branding-intro = Lo que las páginas de inicio de sesión, de cuenta y de error y los correos muestran de esta organización. Un campo vacío conserva lo propio de Gatehouse.
console-branding-words = Nombre, colores y soporte
console-brand-name = Nombre que muestran sus páginas y correos (hasta 80 caracteres)
console-brand-support = Texto de soporte bajo el formulario de inicio de sesión y en los correos (hasta 500 caracteres)
console-brand-accent = Color de acento, páginas claras (#rrggbb)
console-brand-accent-hint = Debe alcanzar 4.5:1 contra la página blanca y bajo texto blanco: un color más oscuro.
console-brand-accent-dark = Color de acento, páginas oscuras (#rrggbb)
console-brand-accent-dark-hint = Debe alcanzar 4.5:1 contra la página oscura y bajo texto oscuro: un color más claro.
console-brand-apps = Identificadores de cliente y de entidad SAML que lleva, uno por línea
console-save-branding = Guardar identidad visual
console-colour-invalid = { $field }: debe ser un color escrito #rrggbb
console-logo = Logotipo
console-current-logo = El logotipo actual
console-no-logo = Sin logotipo: las páginas muestran el nombre.
console-logo-file = Una imagen PNG, JPEG o WebP, de hasta 256 KiB
console-upload-logo = Subir logotipo
console-remove-logo = Quitar logotipo
console-logo-too-large = No se guardó el logotipo: pesa más de 256 KiB.
console-logo-kind = No se guardó el logotipo: debe ser una imagen PNG, JPEG o WebP.
console-logo-not-that-kind = No se guardó el logotipo: el archivo no es el tipo de imagen que dice ser.
console-logo-unreadable = No se guardó el logotipo: no se pudo leer el envío, o pesa más de 256 KiB.
